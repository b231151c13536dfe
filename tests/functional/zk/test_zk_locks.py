"""Lock contention between two clients, interoperability with kazoo's Lock
recipe, re-read after locking (zookeeper.md §7)."""

import re
import time

import pytest

from nodepool.zk import (LockedObjectGone, LockError, Node, NodeRequest,
                         NodeState)
from nodepool.zk.paths import node_lock_path, node_path, request_lock_path

from .counting import count_requests

CONTENDER = re.compile(r"^[0-9a-f]{32}__lock__\d{10}$")


def new_node(api):
    node = Node(state=NodeState.READY, provider="p", type=["x"])
    api.store_node(node)
    return node


def new_request(api):
    request = NodeRequest(node_types=["x"])
    api.submit_request(request, priority="200")
    return request


def lock(api, obj, **kw):
    if isinstance(obj, Node):
        return api.lock_node(obj, **kw)
    return api.lock_request(obj, **kw)


def unlock(api, obj):
    if isinstance(obj, Node):
        return api.unlock_node(obj)
    return api.unlock_request(obj)


def fetch(api, obj):
    if isinstance(obj, Node):
        return api.get_node(obj.id)
    return api.get_request(obj.id)


@pytest.mark.parametrize("kind", ["node", "request"])
def test_contention_between_two_clients(zk_factory, kind):
    first, second = zk_factory(), zk_factory(cache=False)
    obj = new_node(first) if kind == "node" else new_request(first)
    lock(first, obj, blocking=False)
    theirs = fetch(second, obj)
    with pytest.raises(LockError):
        lock(second, theirs, blocking=False)
    start = time.monotonic()
    with pytest.raises(LockError):
        lock(second, theirs, blocking=True, timeout=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3.0
    assert theirs.lock is None
    assert first.is_locked(obj, cached=False)
    unlock(first, obj)
    lock(second, theirs, blocking=True, timeout=5.0)
    assert theirs.lock.is_acquired
    # Failed attempts left no contenders behind.
    assert len(second.lock_holders(obj)) == 1
    unlock(second, theirs)
    assert not second.is_locked(obj, cached=False)


def test_blocking_waiter_gets_the_lock_on_release(zk_factory):
    import threading
    first, second = zk_factory(), zk_factory(cache=False)
    node = new_node(first)
    first.lock_node(node)
    theirs = second.get_node(node.id)
    done = threading.Event()

    def waiter():
        second.lock_node(theirs, timeout=10)
        done.set()
    thread = threading.Thread(target=waiter)
    thread.start()
    assert not done.wait(0.3)
    first.unlock_node(node)
    assert done.wait(10)
    thread.join()
    second.unlock_node(theirs)


@pytest.mark.parametrize("kind", ["node", "request"])
def test_interoperates_with_kazoo_lock_recipe(zk, zkapi, kind):
    obj = new_node(zkapi) if kind == "node" else new_request(zkapi)
    path = node_lock_path(obj.id) if kind == "node" else \
        request_lock_path(obj.id)
    kazoo = zk.kazoo()
    try:
        theirs = kazoo.Lock(path, "zuul")
        assert theirs.acquire(blocking=False)
        with pytest.raises(LockError):
            lock(zkapi, obj, blocking=False)
        theirs.release()
        lock(zkapi, obj, blocking=False)
        children = kazoo.get_children(path)
        assert len(children) == 1 and CONTENDER.match(children[0])
        assert not kazoo.Lock(path).acquire(blocking=False)
        unlock(zkapi, obj)
        assert kazoo.Lock(path).acquire(blocking=False)
    finally:
        kazoo.stop()


def test_locking_rereads_stale_objects(zk_factory):
    first, second = zk_factory(), zk_factory(cache=False)
    request = new_request(first)
    stale = second.get_request(request.id)
    request.relative_priority = 5
    request.declined_by.append("w1")
    first.store_request(request)
    second.lock_request(stale, blocking=False)
    assert stale.relative_priority == 5 and stale.declined_by == ["w1"]
    assert stale.stat.version == request.stat.version
    second.unlock_request(stale)


BURST = 30


def cached_copies(api, nodes):
    """The nodes as the deleter takes them: cloned from the cache (read
    once, so the entries hold the current version)."""
    ids = {node.id for node in nodes}
    copies = [n.clone() for n in api.iter_nodes(
        cached=True, shared=True, ids=lambda i: i in ids)]
    assert len(copies) == len(nodes)
    return copies


def node_reads(sent, nodes) -> int:
    return sum(sent[("GetData", node_path(n.id))] for n in nodes)


def test_locking_an_unchanged_cached_node_costs_no_read(zk_factory):
    """The cache proves the copy current once the lock is held: no read,
    the record kept as is -- and it is what the server holds."""
    api, other = zk_factory(), zk_factory(cache=False)
    nodes = [new_node(api) for _ in range(BURST)]
    copies = cached_copies(api, nodes)
    sent = count_requests(api)
    for node in copies:
        api.lock_node(node, blocking=False)
    assert node_reads(sent, copies) == 0
    for node in copies:
        server = other.get_node(node.id)
        assert node.to_dict() == server.to_dict()
        assert node.stat.mzxid == server.stat.mzxid
        api.delete_node(node)     # a conditional write: the version holds
        assert other.get_node(node.id) is None


def test_node_changed_just_before_the_lock_is_read_again(zk_factory):
    """Another client's change committed before our lock is notified
    before the lock's reply: the copy is re-read and shows it."""
    api, other = zk_factory(), zk_factory(cache=False)
    nodes = [new_node(api) for _ in range(BURST)]
    copies = cached_copies(api, nodes)
    for node in copies:
        theirs = other.get_node(node.id)
        theirs.allocated_to = f"req-{node.id}"
        other.store_node(theirs)
        api.lock_node(node, blocking=False)   # right away: no waiting
        assert node.allocated_to == f"req-{node.id}"
        assert node.stat.version == theirs.stat.version
        api.unlock_node(node)


def test_copy_of_another_version_is_read_again(zk_factory, wait_for):
    """A copy read before a change the cache already holds is re-read."""
    api = zk_factory()
    node = new_node(api)
    old = api.get_node(node.id)
    node.allocated_to = "req-1"
    api.store_node(node)
    wait_for(lambda: api.get_node(node.id, cached=True).allocated_to
             == "req-1", message="the cache to hold the change")
    sent = count_requests(api)
    api.lock_node(old, blocking=False)
    assert node_reads(sent, [old]) == 1
    assert old.allocated_to == "req-1"
    api.unlock_node(old)


@pytest.mark.parametrize("how", [{"cache": False}, {"persistent": False}])
def test_without_a_proving_cache_the_lock_reads(zk_factory, wait_for, how):
    """No cache, or one-shot watches (not ordered with our replies): the
    node is read after locking, even when the cache holds it."""
    api = zk_factory(**how)
    node = new_node(api)
    copy = wait_for(lambda: api.get_node(node.id, cached=True),
                    message="the cache to hold the node")
    sent = count_requests(api)
    api.lock_node(copy, blocking=False)
    assert node_reads(sent, [copy]) == 1
    api.unlock_node(copy)


def test_locking_a_removed_node_fails_without_litter(zk, zkapi):
    node = new_node(zkapi)
    stale = zkapi.get_node(node.id)
    zkapi.delete_node(node)
    with pytest.raises(LockedObjectGone):
        zkapi.lock_node(stale, blocking=False)
    kazoo = zk.kazoo()
    try:
        assert kazoo.exists(node_path(node.id)) is None
    finally:
        kazoo.stop()


def test_locking_a_vanished_request_fails(zkapi):
    request = new_request(zkapi)
    zkapi.delete_request(request)
    with pytest.raises(LockedObjectGone):
        zkapi.lock_request(request, blocking=False)
    assert request.lock is None
    ids = [rid for rid, _ in zkapi.iter_request_lock_dirs()]
    assert ids == [request.id]  # lock dirs outlive requests
