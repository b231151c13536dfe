"""The launcher calls the registered-nodes verbs of every adapter.

The static driver does its work through the adapter contract only, so the
core must call those verbs for any driver, not for one it recognises: a
fake-cloud adapter that records the calls (registered for ``driver:
fake``) is handed the provider manager as its ``NodeBoard`` once, is told
of every znode removed (``node_deleted``), and defers a request as long as
its ``has_capacity_now`` says no.
"""

from __future__ import annotations

import threading

import pytest

from nodepool.driver import _REGISTERED, fake, register_adapter
from tests.functional.launcher.helpers import fake_provider, wait_for

pytestmark = pytest.mark.functional


class RecordingAdapter(fake.FakeAdapter):
    """The fake cloud's adapter, recording the registered-nodes verbs."""

    def __init__(self, provider, log=None):
        super().__init__(provider, log)
        self.boards: list = []
        self.deleted: list[str] = []
        self.asked: list[str] = []    # request ids, per question
        self.room = threading.Event()

    def register_nodes(self, board) -> None:
        self.boards.append(board)

    def node_deleted(self, node) -> None:
        self.deleted.append(node.id)

    def has_capacity_now(self, pool, request, nodes) -> bool:
        self.asked.append(request.id)
        return self.room.is_set()


@pytest.fixture
def recording():
    register_adapter("fake", RecordingAdapter)
    yield
    _REGISTERED.pop("fake", None)


def test_registered_nodes_verbs_are_called_for_any_driver(env, recording):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    manager = wait_for(lambda: launcher.provider_managers().get(
        "fake-provider"), what="provider running")
    adapter = manager.adapter
    assert isinstance(adapter, RecordingAdapter)
    assert adapter.boards == [manager]
    assert adapter.boards[0].zk is manager.zk

    rid = env.zuul.submit(["small"])
    # Asked on three passes, and deferred on each: nothing launched.
    wait_for(lambda: adapter.asked.count(rid) >= 3,
             what="has_capacity_now asked three times")
    assert env.zuul.get_request(rid)["state"] == "requested"
    assert fake.cloud_for("fake-provider").instances == {}

    adapter.room.set()
    (node_id,) = env.zuul.wait_state(rid, {"fulfilled"})["nodes"]
    assert adapter.deleted == []
    env.zuul.accept(rid)
    env.zuul.release([node_id])
    env.zuul.wait_node_gone(node_id)
    wait_for(lambda: adapter.deleted == [node_id],
             what="node_deleted called for the removed znode")
    assert adapter.boards == [manager]   # registered once
