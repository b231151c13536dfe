"""The lean node/request caches (one-shot watches, for servers older than
ZooKeeper 3.6): lock state by name only, nothing missed."""

from __future__ import annotations

from nodepool.zk import Node, NodeState


def make_node(api) -> Node:
    node = Node(state=NodeState.READY, provider="p", pool="main",
                type=["small"])
    api.store_node(node)
    return node


def test_cached_lock_state_follows_contenders(zk_factory, wait_for, zk):
    api = zk_factory(persistent=False)
    other = zk.kazoo()
    try:
        node = make_node(api)
        wait_for(lambda: api.get_node(node.id, cached=True) is not None,
                 message="node cached")
        assert not api.is_locked(node)
        lock = other.Lock(f"/nodepool/nodes/{node.id}/lock", "requester")
        assert lock.acquire(timeout=5)
        wait_for(lambda: api.is_locked(node), message="lock seen")
        lock.release()
        wait_for(lambda: not api.is_locked(node), message="unlock seen")
        # A second cycle on the same (watch-less) contender names works too.
        assert lock.acquire(timeout=5)
        wait_for(lambda: api.is_locked(node), message="second lock seen")
        lock.release()
        wait_for(lambda: not api.is_locked(node), message="second unlock")
    finally:
        other.stop()


def test_lock_contenders_are_not_fetched(zk_factory, wait_for, zk):
    api = zk_factory(persistent=False)
    node = make_node(api)
    api.lock_node(node)
    lock_dir = f"/nodepool/nodes/{node.id}/lock"
    wait_for(lambda: api.is_locked(node), message="lock seen")
    contender = next(iter(api.caches.children(lock_dir)))
    # Known by name, but neither its data nor the lock directory's is read.
    assert api.caches.get(f"{lock_dir}/{contender}") is None
    assert api.caches.get(lock_dir) is None
    assert api.caches.get(f"/nodepool/nodes/{node.id}") is not None
    api.unlock_node(node)


def test_removed_node_leaves_the_cache_with_its_lock(zk_factory, wait_for):
    api = zk_factory(persistent=False)
    node = make_node(api)
    api.lock_node(node)
    wait_for(lambda: api.is_locked(node), message="lock seen")
    api.delete_node(node)
    wait_for(lambda: api.get_node(node.id, cached=True) is None,
             message="node gone from cache")
    assert not api.caches.children(f"/nodepool/nodes/{node.id}/lock")
