"""Fixtures for launcher tests: ``env`` (tests/functional/conftest.py),
``collector`` (below) and the helpers in helpers.py."""

import pytest

from tests.functional.launcher.statsd import Collector


@pytest.fixture
def collector(monkeypatch):
    """A UDP statsd listener the launchers started after it report to."""
    c = Collector()
    for name, value in c.env().items():
        monkeypatch.setenv(name, value)
    yield c
    c.close()
