"""Cached reads follow writes through watches; listeners wake loops."""

import threading

import pytest

from nodepool.zk import Node, NodeRequest, NodeState


@pytest.fixture(params=["persistent", "one-shot"])
def zkapi(request, zk_factory):
    """Every test here runs with both cache kinds: one persistent recursive
    watch per root, and the one-shot watches used on servers older than
    ZooKeeper 3.6."""
    return zk_factory(persistent=request.param == "persistent")


def test_cached_node_reads_follow_writes(zkapi, zk_factory, wait_for):
    writer = zk_factory(cache=False)
    node = Node(state=NodeState.BUILDING, provider="p")
    writer.store_node(node)
    wait_for(lambda: zkapi.get_node(node.id, cached=True), message="add")
    node.set_state(NodeState.READY)
    writer.store_node(node)
    wait_for(lambda: zkapi.get_node(node.id, cached=True).state == "ready",
             message="update")
    cached = zkapi.get_node(node.id, cached=True)
    assert cached.stat.version == node.stat.version
    writer.delete_node(node)
    wait_for(lambda: zkapi.get_node(node.id, cached=True) is None,
             message="removal")
    assert list(zkapi.iter_nodes()) == []


def test_listener_is_called_on_changes(zkapi, zk_factory):
    woke = threading.Event()
    zkapi.add_listener(woke.set)
    writer = zk_factory(cache=False)
    writer.submit_request(NodeRequest(node_types=["x"]))
    assert woke.wait(10)
    woke.clear()
    node = Node(state=NodeState.READY)
    writer.store_node(node)
    assert woke.wait(10)
    zkapi.remove_listener(woke.set)


def test_cached_is_locked_follows_lock_contenders(zkapi, zk_factory,
                                                  wait_for):
    other = zk_factory(cache=False)
    node = Node(state=NodeState.READY)
    other.store_node(node)
    wait_for(lambda: zkapi.get_node(node.id, cached=True))
    assert not zkapi.is_locked(node)
    other.lock_node(node)
    wait_for(lambda: zkapi.is_locked(node), message="locked in cache")
    other.unlock_node(node)
    wait_for(lambda: not zkapi.is_locked(node), message="unlocked")
    request = NodeRequest(node_types=["x"])
    other.submit_request(request)
    other.lock_request(request)
    wait_for(lambda: zkapi.is_locked(request), message="request locked")
    other.unlock_request(request)
    wait_for(lambda: not zkapi.is_locked(request), message="req unlocked")


def test_cached_stale_copy_still_writes_safely(zkapi, zk_factory,
                                               wait_for):
    """A write based on a stale cached copy merges instead of clobbering."""
    other = zk_factory(cache=False)
    node = Node(state=NodeState.READY)
    other.store_node(node)
    cached = wait_for(lambda: zkapi.get_node(node.id, cached=True))
    node.comment = "other writer"
    other.store_node(node)
    cached.allocated_to = "100-0000000001"
    zkapi.store_node(cached)
    final = other.get_node(node.id)
    assert final.comment == "other writer"
    assert final.allocated_to == "100-0000000001"


def test_decode_memo_forgets_deleted_znodes(zkapi, zk_factory, wait_for,
                                            monkeypatch):
    """The memo of decoded cached records drops the znodes the cache no
    longer holds: over 300 nodes created, read and deleted 30 at a time it
    stays near the live count instead of remembering every node."""
    from nodepool.zk import store
    monkeypatch.setattr(store, "_MEMO_PRUNE_MIN", 40)
    zkapi._memo_prune_at = 40
    writer = zk_factory(cache=False)
    for _ in range(10):
        nodes = [Node(state=NodeState.READY, provider="p")
                 for _ in range(30)]
        for node in nodes:
            writer.store_node(node)
        wait_for(lambda: len(list(zkapi.iter_nodes(cached=True))) == 30,
                 message="30 nodes cached")
        for node in nodes:
            writer.delete_node(node)
        wait_for(lambda: not list(zkapi.iter_nodes(cached=True)),
                 message="30 nodes gone")
    assert len(zkapi._memo) <= 2 * 30 + 40
