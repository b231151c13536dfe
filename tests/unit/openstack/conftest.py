"""Fixtures for OpenStack unit tests (builders live in helpers.py)."""

from __future__ import annotations

import pytest

from tests.unit.openstack.helpers import ManualClock, StubAdapter, make_spec


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def adapter(clock):
    return StubAdapter(clock)


@pytest.fixture
def spec_factory():
    return make_spec
