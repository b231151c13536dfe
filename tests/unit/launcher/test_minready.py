"""MinReady alone, through its ``Daemon`` and ``Store`` seams: an
in-memory store of nodes and requests, labels and pool workers the test
sets, and no ZooKeeper server."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from nodepool.config.model import Label
from nodepool.launcher.minready import PRIORITY, REQUESTOR, MinReady
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeRequest, NodeState, RequestState


class Store:
    """Records as dicts (a read gives a fresh object, as ZooKeeper does);
    ``lock_trouble`` holds node ids whose lock fails."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.requests: dict[str, dict] = {}
        self.submitted: list[tuple[str, str, bool]] = []
        self.locked: set[str] = set()
        self.lock_trouble: set[str] = set()
        self.unlocks = 0
        self._seq = 0

    def add_node(self, node_id, label, state=NodeState.READY,
                 allocated_to=None):
        node = Node(id=node_id, state=state, allocated_to=allocated_to)
        node.type = [label]
        self.nodes[node_id] = node.to_dict()

    def node(self, node_id) -> Node:
        return Node.from_dict(node_id, self.nodes[node_id])

    def request(self, request_id) -> NodeRequest:
        return NodeRequest.from_dict(request_id, self.requests[request_id])

    def set_request(self, request_id, state, nodes=()):
        request = self.request(request_id)
        request.state = state
        request.nodes = list(nodes)
        self.requests[request_id] = request.to_dict()

    # -- the Store protocol ---------------------------------------------
    def iter_nodes(self, cached=True, shared=False):
        return [self.node(i) for i in sorted(self.nodes)]

    def get_node(self, node_id):
        return self.node(node_id) if node_id in self.nodes else None

    def lock_node(self, node, blocking=True, timeout=None):
        if node.id in self.lock_trouble:
            raise zk_errors.LockError(node.id)
        self.locked.add(node.id)
        node.allocated_to = self.node(node.id).allocated_to  # re-read

    def unlock_node(self, node):
        self.locked.discard(node.id)
        self.unlocks += 1

    def store_node(self, node):
        assert node.id in self.locked, "stored an unlocked node"
        self.nodes[node.id] = node.to_dict()

    def submit_request(self, request, priority, ephemeral):
        request.id = f"{priority}-{self._seq:010d}"
        self._seq += 1
        self.requests[request.id] = request.to_dict()
        self.submitted.append((request.id, priority, ephemeral))
        return request.id

    def get_request(self, request_id, cached=False):
        if request_id not in self.requests:
            return None
        return self.request(request_id)

    def delete_request(self, request):
        if request.id not in self.requests:
            raise zk_errors.NotFound(request.id)
        del self.requests[request.id]


class Daemon:
    def __init__(self, labels, served=()):
        self.zk = Store()
        self.config = SimpleNamespace(
            labels={n: Label(n, min_ready=c) for n, c in labels.items()})
        self.served = set(served)

    def pool_workers(self):
        return {"p-main": SimpleNamespace(supported_labels=self.served)}


def make(labels, served=None):
    daemon = Daemon(labels, served=labels if served is None else served)
    return MinReady(daemon), daemon.zk


def first_request():
    """min-ready for one node of ``small``, after its first pass: (the
    MinReady, its store, the one request it submitted)."""
    min_ready, store = make({"small": 1})
    min_ready.run_once()
    (request_id,) = store.requests
    return min_ready, store, request_id


def asked(store: Store) -> list[str]:
    return sorted(r["node_types"][0] for r in store.requests.values())


def test_asks_for_the_missing_nodes_one_label_each():
    min_ready, store = make({"small": 3, "large": 1, "none": 0})
    store.add_node("0000000001", "small")
    min_ready.run_once()
    assert asked(store) == ["large", "small", "small"]
    for request_id, priority, ephemeral in store.submitted:
        request = store.request(request_id)
        assert (priority, ephemeral) == (PRIORITY, True)
        assert request.requestor == REQUESTOR
        assert request.reuse is False
        assert request.state == RequestState.REQUESTED
        assert request.event_id
        assert request.created_time == request.state_time
    assert set(min_ready.outstanding) == set(store.requests)


def test_only_unallocated_ready_nodes_are_spares():
    min_ready, store = make({"small": 3})
    store.add_node("0000000001", "small")
    store.add_node("0000000002", "small", allocated_to="100-0000000009")
    store.add_node("0000000003", "small", state=NodeState.BUILDING)
    min_ready.run_once()
    assert asked(store) == ["small", "small"]


def test_enough_spares_ask_for_nothing():
    min_ready, store = make({"small": 1})
    store.add_node("0000000001", "small")
    min_ready.run_once()
    assert store.requests == {}


def test_a_label_no_pool_serves_is_never_asked_for():
    min_ready, store = make({"small": 1, "gpu": 2}, served={"small"})
    min_ready.run_once()
    assert asked(store) == ["small"]


def test_no_new_request_while_one_of_the_label_is_outstanding():
    min_ready, store = make({"small": 2})
    min_ready.run_once()
    min_ready.run_once()
    assert asked(store) == ["small", "small"]


def test_a_fulfilled_request_frees_its_nodes_and_goes():
    min_ready, store, request_id = first_request()
    store.add_node("0000000001", "small", allocated_to=request_id)
    store.set_request(request_id, RequestState.FULFILLED, ["0000000001"])
    min_ready.run_once()
    assert store.node("0000000001").allocated_to is None
    assert store.locked == set() and store.unlocks == 1
    assert request_id not in store.requests
    assert request_id not in min_ready.outstanding
    # the freed node is the spare: nothing more is asked for
    assert store.requests == {}


def test_a_node_taken_by_another_request_is_left_alone():
    min_ready, store, request_id = first_request()
    store.add_node("0000000001", "small", allocated_to="100-0000000077")
    store.set_request(request_id, RequestState.FULFILLED, ["0000000001"])
    min_ready.run_once()
    assert store.node("0000000001").allocated_to == "100-0000000077"
    assert store.unlocks == 0
    assert request_id not in store.requests


def test_a_node_that_cannot_be_locked_is_logged_and_the_request_goes(
        caplog):
    caplog.set_level(logging.WARNING, logger="nodepool.MinReady")
    min_ready, store, request_id = first_request()
    store.add_node("0000000001", "small", allocated_to=request_id)
    store.lock_trouble.add("0000000001")
    store.set_request(request_id, RequestState.FULFILLED, ["0000000001"])
    min_ready.run_once()
    assert store.node("0000000001").allocated_to == request_id
    assert request_id not in min_ready.outstanding
    assert "Could not lock min-ready node 0000000001" in caplog.text


def test_a_failed_request_goes_and_is_asked_for_again():
    min_ready, store, first = first_request()
    store.set_request(first, RequestState.FAILED)
    min_ready.run_once()
    assert first not in store.requests
    (second,) = store.requests
    assert second != first and set(min_ready.outstanding) == {second}


def test_a_pending_request_is_kept():
    min_ready, store, request_id = first_request()
    store.set_request(request_id, RequestState.PENDING)
    min_ready.run_once()
    assert list(store.requests) == [request_id]
    assert list(min_ready.outstanding) == [request_id]


def test_a_vanished_request_is_forgotten_and_asked_for_again():
    min_ready, store, first = first_request()
    del store.requests[first]           # our session ended: ephemeral
    min_ready.run_once()
    (second,) = store.requests
    assert set(min_ready.outstanding) == {second} and second != first


def test_a_request_deleted_meanwhile_is_not_an_error():
    min_ready, store, request_id = first_request()
    store.set_request(request_id, RequestState.FAILED)
    real_delete = store.delete_request

    def gone_first(request):
        del store.requests[request.id]
        real_delete(request)            # raises NotFound
    store.delete_request = gone_first
    min_ready.run_once()
    assert request_id not in min_ready.outstanding
