"""Fixtures for OpenStack driver tests: a local OpenStack over real HTTP.

Each test gets its own ``LocalOpenStack`` (an in-process threaded HTTP
server, started in milliseconds) with two availability zones, and a
``clouds.yaml`` for it that openstacksdk finds through
``OS_CLIENT_CONFIG_FILE``, exactly as the launcher would find a real cloud.
The launcher runs in the test process against a real ZooKeeper.
"""

from __future__ import annotations

import pytest

from tests.functional.launcher.helpers import LauncherEnv
from tools.fakeopenstack import LocalOpenStack

ZONES = ["zone-a", "zone-b"]


@pytest.fixture
def cloud():
    fake = LocalOpenStack(availability_zones=ZONES).start()
    yield fake
    fake.stop()


@pytest.fixture
def clouds_yaml(cloud, tmp_path, monkeypatch) -> str:
    path = cloud.write_clouds_yaml(tmp_path / "clouds.yaml",
                                   cloud_name="fake")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", path)
    for key in ("OS_CLOUD", "OS_AUTH_URL", "OS_REGION_NAME"):
        monkeypatch.delenv(key, raising=False)
    return path


@pytest.fixture
def env(zk, tmp_path, clouds_yaml):
    with LauncherEnv(zk, tmp_path) as e:
        yield e
