"""A launch whose offering became unavailable after its node was planned
aborts before any create call (no machine is made)."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.launcher.nodelaunch import NodeLaunch, Outcome
from nodepool.zk.models import Node, NodeState
from nodepool.zk.offering import Offering


class Store:
    def __init__(self):
        self.written = []

    def store_node(self, node):
        self.written.append(node.state)


def make(record):
    calls = {"machines": 0, "capacity": []}

    def create_machine(spec):
        calls["machines"] += 1
        raise AssertionError("no create call may be made")
    manager = SimpleNamespace(
        zk=Store(), adapter=SimpleNamespace(create_machine=create_machine),
        provider=SimpleNamespace(name="p", launch_timeout=60.0,
                                 launch_retries=3),
        stats=SimpleNamespace(launch_result=lambda *a: None),
        offering_unavailable=lambda pool, label: record,
        capacity_error=lambda pool, label, e: calls["capacity"].append(e),
        launch_succeeded=lambda pool, label: None,
        keyscan_pool=None)
    node = Node(id="0000000001", state=NodeState.BUILDING)
    launcher = NodeLaunch(manager, node, SimpleNamespace(settings={}),
                            SimpleNamespace(settings={}, image=None),
                            clock=lambda: 1000.0)
    return launcher, calls, manager


def test_unavailable_offering_aborts_before_the_create_call():
    record = Offering(provider="p", key="sub-a/t3", until=2e9,
                      reason="InsufficientInstanceCapacity")
    launcher, calls, manager = make(record)
    assert launcher.advance() is True
    assert launcher.outcome is Outcome.ABORTED
    assert calls["machines"] == 0
    assert launcher.node.state == NodeState.ABORTED
    assert "sub-a/t3" in launcher.error
    assert manager.zk.written[-1] == NodeState.ABORTED
