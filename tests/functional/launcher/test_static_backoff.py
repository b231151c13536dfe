"""A static host that cannot be reached backs off on its own.

Static hosts have no credentials, but each host is an endpoint: one that
drops every connection (``tools.deadend``) is keyscanned again only after
its own exponential back-off, however often the sync runs, and logged
once; a reachable host of the same provider is registered meanwhile.
"""

from __future__ import annotations

import logging

import pytest

from tests.functional.backoff import (assert_backs_off, assert_logged_once,
                                      fast_backoff, probes)
from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_static import (full_sync, host,
                                                   manager_of, ready_slots,
                                                   static_provider)
from tools.deadend import DeadEnd

pytestmark = pytest.mark.functional
__all__ = ["fast_backoff"]


def test_unreachable_static_host_backs_off_alone(env, sshd, fast_backoff,
                                                 caplog):
    caplog.set_level(logging.INFO)
    with DeadEnd() as dead:
        env.write_config([static_provider(
            host(dead.port, username="dead", timeout=2),
            host(sshd.port, username="alive"))])
        manager = manager_of(env.start_launcher())

        def syncs_until(count: int) -> bool:
            full_sync(manager)       # syncs as fast as they go
            # (a keyscan connects once per key type: three a scan)
            return len(probes(dead.connections(), 3)) >= count
        wait_for(lambda: syncs_until(6), timeout=60,
                 what="six keyscans of the dead host")
        assert_backs_off(dead.connections(), bursts=6, per_burst=3)
        assert ready_slots(env.zuul, "alive") == [0]
        assert ready_slots(env.zuul, "dead") == []
    name = f"static host 127.0.0.1 port {dead.port}"
    assert_logged_once(caplog.records, name, "endpoint unreachable",
                       ("keyscan failed",), level=logging.WARNING)
