"""PoolAllocator: the pool's side of the handler's Allocator seam -- the
"delete the oldest unused ready node at quota" step and the node record it
builds, with fakes of the ZooKeeper calls and of the provider manager."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.config.model import Pool
from nodepool.driver.quota import Quota
from nodepool.launcher.allocator import PoolAllocator, lock_spare
from nodepool.launcher.quota import PoolQuota
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState
from tests.unit.launcher.fakes import Clock


class Store:
    """Node locks and writes; ``changed`` nodes are found allocated once
    locked (the lock re-reads the record, as the real one does)."""

    def __init__(self):
        self.locks: set[str] = set()
        self.changed: set[str] = set()
        self.stored: list[tuple[str, str]] = []
        self.attempts = 0                   # lock round trips

    def is_locked(self, node):
        return node.id in self.locks

    def lock_node(self, node, blocking=True):
        self.attempts += 1
        if node.id in self.locks:
            raise zk_errors.LockError(node.id)
        self.locks.add(node.id)
        if node.id in self.changed:
            node.allocated_to = "someone"

    def unlock_node(self, node):
        self.locks.discard(node.id)

    def store_node(self, node):
        self.stored.append((node.id, node.state))


def ready(i: int, age: float, **kw) -> Node:
    node = Node(id=f"{i:010d}", state=NodeState.READY)
    node.provider, node.pool, node.type = "p", "main", ["small"]
    node.state_time = 5000.0 - age
    for k, v in kw.items():
        setattr(node, k, v)
    return node


def make(nodes):
    clock = Clock(5000.0)
    pool = Pool(name="main", provider_name="p", max_servers=3,
                labels={"small": SimpleNamespace(name="small")})
    quota = PoolQuota(pool, "p", nodes=lambda: nodes,
                      label_cost=lambda label: Quota(instances=1),
                      node_cost=lambda n: Quota(instances=1),
                      provider_limits=Quota, provider_used=lambda n: Quota(),
                      clock=clock)
    deleted: list[Node] = []
    manager = SimpleNamespace(delete_node=deleted.append,
                              launches_nodes=True,
                              adapter=SimpleNamespace(installation="i"))
    store = Store()
    allocator = PoolAllocator(pool, "p", "worker-1", store, manager, quota,
                              spares=lambda label: [])
    return allocator, store, deleted, clock


def test_reclaim_deletes_the_oldest_free_ready_node_once_per_interval():
    nodes = [ready(1, age=10), ready(2, age=90), ready(3, age=50),
             ready(4, age=99, allocated_to="r1")]
    allocator, store, deleted, clock = make(nodes)
    store.locks.add("0000000002")               # the oldest: someone has it
    store.changed.add("0000000003")             # allocated meanwhile
    allocator.reclaim_ready_node()
    assert [n.id for n in deleted] == ["0000000001"]
    assert store.stored == [("0000000001", NodeState.DELETING)]
    assert "0000000001" in store.locks          # the deleter unlocks it
    assert "0000000003" not in store.locks      # let go again
    assert nodes[0].state == NodeState.READY    # the cache's record kept
    allocator.reclaim_ready_node()              # within the interval
    assert len(deleted) == 1
    clock.now += allocator.quota.reclaim_interval
    store.locks.discard("0000000002")
    allocator.reclaim_ready_node()
    assert [n.id for n in deleted] == ["0000000001", "0000000002"]


def test_nothing_to_reclaim_does_not_start_the_interval():
    nodes = [ready(1, age=10, allocated_to="r1")]
    allocator, store, deleted, clock = make(nodes)
    allocator.reclaim_ready_node()
    assert not deleted
    nodes.append(ready(2, age=5))
    clock.now += 1
    allocator.reclaim_ready_node()               # at once, not in 5 min
    assert [n.id for n in deleted] == ["0000000002"]


def test_a_reservation_at_max_servers_is_refused_naming_the_limit():
    nodes = [ready(i, age=i, allocated_to="r") for i in range(3)]
    allocator, *_ = make(nodes)
    verdict = allocator.reserve("small")
    assert not verdict and verdict.describe() == (
        "pool max-servers reached: instances needs 1, 0 free")


# -- lock_spare: the one "take a free ready node" rule ----------------------
def test_lock_spare_hands_over_a_locked_copy_of_a_free_node():
    store = Store()
    cached = ready(1, age=10)
    node = lock_spare(store, cached)
    assert node is not cached and node.id == cached.id
    assert store.locks == {cached.id}


def test_lock_spare_skips_a_node_someone_else_holds():
    store = Store()
    store.locks.add("0000000001")
    assert lock_spare(store, ready(1, age=10)) is None
    assert store.locks == {"0000000001"}        # theirs, untouched
    assert store.attempts == 0                  # the cache said so: no trip


def test_lock_spare_lets_go_of_a_node_allocated_meanwhile():
    store = Store()
    store.changed.add("0000000001")
    cached = ready(1, age=10)
    assert lock_spare(store, cached) is None
    assert store.locks == set()
    assert cached.allocated_to is None          # the cache's record kept


def test_lock_spare_lets_go_of_a_node_no_longer_ready():
    store = Store()
    store.lock_node = lambda node, blocking=True: (
        store.locks.add(node.id), node.set_state(NodeState.DELETING))
    assert lock_spare(store, ready(1, age=10)) is None
    assert store.locks == set()

