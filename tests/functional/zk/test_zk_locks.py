"""Lock contention between two clients, interoperability with kazoo's Lock
recipe, re-read after locking (zookeeper.md §7)."""

import re
import time

import pytest

from nodepool.zk import (LockedObjectGone, LockError, Node, NodeRequest,
                         NodeState)
from nodepool.zk.paths import node_lock_path, node_path, request_lock_path

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
