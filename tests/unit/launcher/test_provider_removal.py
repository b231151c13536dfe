"""The provider's loop never waits for ZooKeeper to remove a deleted node's
znode: every removal is sent, and each is settled on the loop thread once
its reply is in (one round trip per node on the loop held a busy provider's
launches and deletes behind ZooKeeper's replies)."""

from __future__ import annotations

import threading

from nodepool.launcher.provider import ProviderManager
from nodepool.zk import Node, NodeState
from tests.unit.launcher.fakes import BareAdapter

BURST = 30


class GoneAtOnce:
    """A delete machine whose instance is gone at its first step."""

    def advance(self):
        return True


class Adapter(BareAdapter):
    def delete_machine(self, external_id, immediate=False):
        return GoneAtOnce()


class Removal:
    """A removal in flight; the test decides when its reply is in."""

    def __init__(self):
        self.replied = threading.Event()
        self.callbacks = []
        self.finished_on = None

    def done(self):
        return self.replied.is_set()

    def on_done(self, callback):
        self.callbacks.append(callback)

    def reply(self):
        self.replied.set()
        for callback in self.callbacks:
            callback()

    def finish(self):
        self.finished_on = threading.current_thread().name


class Zk:
    def __init__(self):
        self.removals: dict[str, Removal] = {}
        self.unlocked: list[str] = []
        self.sent = threading.Condition()

    def delete_node_async(self, node):
        with self.sent:
            self.removals[node.id] = Removal()
            self.sent.notify_all()
            return self.removals[node.id]

    def unlock_node(self, node):
        self.unlocked.append(node.id)


def wait(cond, what):
    deadline = threading.Event()
    for _ in range(1000):
        if cond():
            return
        deadline.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_removals_are_all_sent_before_any_reply_and_settled_on_the_loop():
    adapter = Adapter()
    zk = Zk()
    manager = ProviderManager(adapter.provider, adapter, zk, None, None)
    nodes = [Node(id=f"{i:010d}", state=NodeState.DELETING,
                  provider=adapter.provider.name, external_id=f"i-{i}")
             for i in range(BURST)]
    manager.start()
    try:
        for node in nodes:
            manager.delete_node(node)
        # No reply is in, and yet every removal was sent: the loop did
        # not wait for the first.
        with zk.sent:
            assert zk.sent.wait_for(lambda: len(zk.removals) == BURST, 10)
        assert all(manager.is_deleting(n.id) for n in nodes)
        assert not zk.unlocked
        for removal in zk.removals.values():
            removal.reply()
        wait(lambda: not any(manager.is_deleting(n.id) for n in nodes),
             "every removal settled")
        assert {r.finished_on for r in zk.removals.values()} == {
            f"{adapter.provider.name}-loop"}
        assert sorted(zk.unlocked) == sorted(n.id for n in nodes)
    finally:
        manager.stop()
