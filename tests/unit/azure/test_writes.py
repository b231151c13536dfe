"""Writes run latest launch stage first; shutdown leaves nothing pending."""

from __future__ import annotations

import threading

import pytest

from nodepool.driver.azure.writes import (EARLY, NORMAL, URGENT,
                                          PriorityWrites)
from nodepool.driver.createpool import CreatePool


def test_priority_order_and_results():
    pool = CreatePool("t", 1)
    writes = PriorityWrites(pool)
    gate = threading.Event()
    order = []
    blocker = writes.submit(URGENT, gate.wait, 5)     # occupies the worker
    futures = [writes.submit(prio, order.append, name) for prio, name in
               [(EARLY, "pip-a"), (NORMAL, "nic-a"), (EARLY, "pip-b"),
                (URGENT, "vm-a"), (URGENT, "delete-x")]]
    gate.set()
    for f in [blocker] + futures:
        f.result(timeout=5)
    assert order == ["vm-a", "delete-x", "nic-a", "pip-a", "pip-b"]
    failing = writes.submit(NORMAL, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    writes.shutdown()


def test_shutdown_cancels_what_will_not_run():
    pool = CreatePool("t", 1)
    writes = PriorityWrites(pool)
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        return gate.wait(5)

    running = writes.submit(URGENT, hold)
    assert started.wait(5)
    queued = writes.submit(EARLY, lambda: "never")
    writes.shutdown()
    gate.set()
    assert running.result(timeout=5) is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        writes.submit(URGENT, lambda: None)
    assert writes.queued == 0
