"""NodeLaunch's asynchronous node writes (the provider loop never waits
for ZooKeeper): a write with connection trouble is sent again, within the
launch timeout, instead of failing the launch attempt."""

from __future__ import annotations

from types import SimpleNamespace

from kazoo.exceptions import ConnectionLoss

from nodepool.launcher.nodelaunch import (REWRITE_DELAY, NodeLaunch,
                                            Outcome)
from nodepool.zk.errors import ZooKeeperError
from nodepool.zk.models import Node, NodeState
from tests.unit.launcher.fakes import Clock


class Write:
    """A PendingWrite whose reply is in: ``error`` raised by result()."""

    def __init__(self, error=None):
        self.error = error

    def done(self):
        return True

    def result(self):
        if self.error is not None:
            raise ZooKeeperError("could not write") from self.error


class Store:
    """Hands out the queued write outcomes, recording each node state."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.written = []

    def store_node(self, node):
        self.written.append(node.state)

    def store_node_async(self, node):
        self.written.append(node.state)
        return Write(self.outcomes.pop(0))


def make_launcher(outcomes, launch_timeout=60.0):
    store = Store(outcomes)
    reports = []
    manager = SimpleNamespace(
        zk=store, adapter=None,
        provider=SimpleNamespace(name="p", launch_timeout=launch_timeout,
                                 launch_retries=3),
        stats=SimpleNamespace(launch_result=lambda *a: reports.append(a)),
        offering_unavailable=lambda pool, label: None,
        capacity_error=lambda pool, label, error: None,
        launch_succeeded=lambda pool, label: None)
    node = Node(id="0000000001", state=NodeState.BUILDING)
    clock = Clock()
    launcher = NodeLaunch(manager, node, SimpleNamespace(settings={}),
                            SimpleNamespace(settings={}), clock=clock)
    return launcher, store, clock, reports


def test_ready_write_with_connection_trouble_is_sent_again():
    launcher, store, clock, reports = make_launcher([ConnectionLoss(), None])
    launcher._finish_ready()
    assert store.written == [NodeState.READY]
    assert launcher.advance() is False          # reply: ConnectionLoss
    assert launcher.outcome is Outcome.RUNNING and launcher.attempt == 1
    assert launcher.advance() is False          # not before the delay
    assert store.written == [NodeState.READY]
    clock.now += REWRITE_DELAY
    assert launcher.advance() is False          # the same write again
    assert store.written == [NodeState.READY, NodeState.READY]
    assert launcher.advance() is True           # it landed
    assert launcher.outcome is Outcome.READY
    assert [r[3] for r in reports] == ["ready"]


def test_write_trouble_past_the_launch_timeout_fails_the_attempt():
    launcher, store, clock, reports = make_launcher(
        [ConnectionLoss(), None], launch_timeout=5.0)
    launcher._finish_ready()
    clock.now += 6.0
    launcher.advance()
    # Not retried: the attempt failed (a new one starts, node not READY).
    assert launcher.attempt == 2
    assert launcher.node.state == NodeState.BUILDING
    assert store.written[-1] == NodeState.BUILDING   # never READY stored
    assert [r[3] for r in reports] == ["error.unknown"]


def test_other_write_errors_fail_the_attempt():
    launcher, store, clock, reports = make_launcher([ValueError("bad"), None])
    launcher._finish_ready()
    launcher.advance()
    assert launcher.attempt == 2
    assert launcher.node.state == NodeState.BUILDING
