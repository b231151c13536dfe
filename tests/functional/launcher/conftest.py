"""Fixtures for launcher tests (see helpers.py)."""

import pytest

from nodepool.driver import fake
from tests.functional.launcher.helpers import LauncherEnv


@pytest.fixture
def env(zk, tmp_path):
    fake.CLOUDS.clear()
    e = LauncherEnv(zk, tmp_path)
    yield e
    e.stop()
    fake.CLOUDS.clear()
