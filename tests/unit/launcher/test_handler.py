"""RequestHandler alone: accept, reuse, launch, launch retry, abort at
quota, decline, fulfil, give-back and ZooKeeper trouble -- driven through
its two narrow seams (``RequestStore`` and ``Allocator``) with small fakes
of exactly those, an injected clock and no ZooKeeper server."""

from __future__ import annotations

from kazoo.exceptions import ConnectionLoss

from nodepool.launcher.allocator import lock_spare
from nodepool.launcher.handler import (RETRY_DELAY, Allocator,
                                       RequestHandler, RequestStore)
from nodepool.launcher.nodelaunch import Outcome
from nodepool.launcher.quota import FITS, Verdict
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeRequest, NodeState, RequestState
from tests.unit.launcher.fakes import Clock


class Store:
    """An in-memory RequestStore: znodes as dicts, locks as a set.

    ``trouble[name]`` is a list of exceptions the next calls of ``name``
    raise (after which calls succeed again)."""

    def __init__(self, requests=()):
        self.requests = {r.id: r.to_dict() for r in requests}
        self.nodes: dict[str, dict] = {}
        self.locks: set[str] = set()
        self.trouble: dict[str, list] = {}
        self.calls: list[str] = []
        self._next = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        pending = self.trouble.get(name)
        if pending:
            raise pending.pop(0)

    def request_exists(self, request_id, cached=True):
        return request_id in self.requests

    def store_request(self, request):
        self._call("store_request")
        if request.id not in self.requests:
            raise zk_errors.NotFound(request.id)
        self.requests[request.id] = request.to_dict()

    def finish_request(self, request, nodes):
        self._call("finish_request")
        self.requests[request.id] = request.to_dict()
        for node in nodes:
            self.locks.discard(f"node/{node.id}")
        self.locks.discard(f"request/{request.id}")
        return True

    def unlock_request(self, request):
        self.locks.discard(f"request/{request.id}")

    def is_locked(self, node):
        return f"node/{node.id}" in self.locks

    def lock_node(self, node, blocking=True):
        self._call("lock_node")
        if f"node/{node.id}" in self.locks:
            raise zk_errors.LockError(node.id)
        self.locks.add(f"node/{node.id}")

    def lock_new_node(self, node, timeout):
        self._call("lock_new_node")
        self.locks.add(f"node/{node.id}")
        self.nodes[node.id] = node.to_dict()

    def unlock_node(self, node):
        self.locks.discard(f"node/{node.id}")

    def store_node(self, node):
        self._call("store_node")
        if node.id is None:
            node.id = f"{self._next:010d}"
            self._next += 1
        self.nodes[node.id] = node.to_dict()

    def add_spare(self, node_id: str, label: str, az=None) -> Node:
        node = Node(id=node_id, state=NodeState.READY)
        node.type = [label]
        node.az = az
        self.nodes[node_id] = node.to_dict()
        return node


class FakeLaunch:
    def __init__(self, node):
        self.node = node
        self.outcome = Outcome.RUNNING
        self.settled = False
        self.detached = False

    def finish(self, outcome: Outcome):
        self.outcome = outcome
        self.node.state = {Outcome.READY: NodeState.READY,
                           Outcome.FAILED: NodeState.FAILED,
                           Outcome.ABORTED: NodeState.ABORTED}[outcome]
        self.settled = True

    def detach(self):
        self.detached = True
        return not self.settled


class Pool:
    """A fake Allocator: a quota of ``room`` nodes, spares, zones."""

    def __init__(self, room: int = 10, zones=(), launches_nodes=True):
        self.room = room
        self.launches_nodes = launches_nodes
        self.installation = "inst-1"
        self.spare_nodes: dict[str, list[Node]] = {}
        self.unavailable_labels: dict[str, str] = {}
        self._zones = list(zones)
        self.reserved: set[object] = set()
        self.committed: list[str] = []
        self.released = 0
        self.reclaims = 0
        self.launches: list[FakeLaunch] = []

    def spares(self, label_name):
        return list(self.spare_nodes.get(label_name, []))

    def lock_spare(self, node):
        return lock_spare(self.store, node)     # the pool's own rule

    def unavailable(self, label_name):
        return self.unavailable_labels.get(label_name)

    def reserve(self, label_name):
        if len(self.reserved) + len(self.committed) >= self.room:
            return Verdict(False, "pool max-servers", "instances", 0, 1)
        token = object()
        self.reserved.add(token)
        return Verdict(True, reservation=token)

    def commit(self, reservation, node):
        self.reserved.discard(reservation)
        self.committed.append(node.id)

    def release(self, reservation):
        self.reserved.discard(reservation)
        self.released += 1

    def reclaim_ready_node(self):
        self.reclaims += 1

    def zones(self):
        return self._zones

    def new_node(self, label_name):
        node = Node()
        node.type = [label_name]
        node.provider, node.pool, node.launcher = "p", "main", "worker-1"
        return node, "ami-1"

    def launch(self, node, label_name, info, image_external_id):
        launch = FakeLaunch(node)
        self.launches.append(launch)
        return launch


class Declines:
    def __init__(self, store: Store):
        self.store = store
        self.reasons: list[str] = []

    def __call__(self, request, reason):
        self.reasons.append(reason)
        request.declined_by.append("worker-1")
        request.set_state(RequestState.FAILED)
        self.store.store_request(request)


def make(node_types=("small",), requestor="zuul", reuse=True, **pool_kw):
    request = NodeRequest(id="100-0000000001", state=RequestState.REQUESTED,
                          node_types=list(node_types), requestor=requestor,
                          reuse=reuse)
    store = Store([request])
    store.locks.add(f"request/{request.id}")
    pool = Pool(**pool_kw)
    pool.store = store
    declines = Declines(store)
    clock = Clock()
    handler = RequestHandler(request, store, pool, declines, clock=clock,
                             choose=lambda zones: zones[0])
    return handler, store, pool, declines, clock


def step(handler: RequestHandler) -> bool:
    """One pass of the pool worker: refill if paused, then run what
    ``check`` says.  False when there was nothing to do."""
    if handler.paused:
        handler.run(handler.fill)
    action = handler.check()
    if action is None:
        return False
    handler.run(action)
    return True


def stored_request(store: Store, handler: RequestHandler) -> dict:
    return store.requests[handler.request.id]


# -- the seams are what the real objects provide -------------------------------
def test_the_real_objects_provide_every_member_of_the_protocols():
    from nodepool.launcher.allocator import PoolAllocator
    from nodepool.zk.zookeeper import ZooKeeper
    for proto, real in ((Allocator, PoolAllocator), (RequestStore, ZooKeeper)):
        wanted = {n for n in vars(proto) if not n.startswith("_")}
        wanted |= set(proto.__annotations__)
        missing = [n for n in sorted(wanted) if not hasattr(real, n)]
        assert not missing, (real.__name__, missing)


# -- accept, launch, fulfil ------------------------------------------------------
def test_accept_launches_then_fulfils_once_every_node_is_ready():
    handler, store, pool, _, _ = make(["small", "big"], zones=["az1", "az2"])
    handler.run(lambda: handler.accept())
    assert stored_request(store, handler)["state"] == RequestState.PENDING
    assert len(pool.launches) == 2 and len(pool.committed) == 2
    nodes = [store.nodes[i] for i in pool.committed]
    assert [n["state"] for n in nodes] == [NodeState.BUILDING] * 2
    assert {n["allocated_to"] for n in nodes} == {handler.request.id}
    assert {n["az"] for n in nodes} == {"az1"}      # one zone per set
    assert all(n["driver_data"]["create"]["attempt"] == 1 for n in nodes)
    assert all(f"node/{i}" in store.locks for i in pool.committed)
    assert step(handler) is False                   # still launching
    pool.launches[0].finish(Outcome.READY)
    assert step(handler) is False
    pool.launches[1].finish(Outcome.READY)
    assert step(handler) is True
    req = stored_request(store, handler)
    assert req["state"] == RequestState.FULFILLED
    assert req["nodes"] == pool.committed and handler.done
    assert not store.locks                          # request and nodes


def test_accept_already_written_by_the_take_does_not_write_again():
    handler, store, pool, _, _ = make()
    handler.run(lambda: handler.accept(written=True))
    assert "store_request" not in store.calls and handler.accepted
    assert len(pool.launches) == 1


# -- reuse -------------------------------------------------------------------------
def test_a_ready_spare_is_reused_and_allocated_instead_of_launching():
    handler, store, pool, _, _ = make(["small"], zones=["az1"])
    spare = store.add_spare("0000000099", "small", az="az2")
    pool.spare_nodes["small"] = [spare]
    handler.run(lambda: handler.accept())
    assert not pool.launches
    assert store.nodes[spare.id]["allocated_to"] == handler.request.id
    assert handler.az == "az2"                      # the set follows it
    assert step(handler)
    assert stored_request(store, handler)["nodes"] == [spare.id]
    assert spare.allocated_to is None               # the pass's record kept


def test_a_locked_spare_is_skipped_and_a_node_is_launched():
    handler, store, pool, _, _ = make()
    spare = store.add_spare("0000000099", "small")
    store.locks.add(f"node/{spare.id}")
    pool.spare_nodes["small"] = [spare]
    handler.run(lambda: handler.accept())
    assert len(pool.launches) == 1


def test_reuse_false_launches_even_with_spares():
    handler, store, pool, _, _ = make(reuse=False)
    pool.spare_nodes["small"] = [store.add_spare("0000000099", "small")]
    handler.run(lambda: handler.accept())
    assert len(pool.launches) == 1


def test_static_pool_waits_for_a_free_slot_and_takes_it():
    handler, store, pool, _, _ = make(reuse=False, launches_nodes=False)
    handler.run(lambda: handler.accept())
    assert handler.paused and not pool.launches
    pool.spare_nodes["small"] = [store.add_spare("0000000099", "small")]
    assert step(handler)
    assert stored_request(store, handler)["state"] == RequestState.FULFILLED


# -- quota ---------------------------------------------------------------------------
def test_at_quota_the_request_waits_reclaims_and_names_the_limit():
    handler, store, pool, declines, clock = make(["small", "small"], room=1)
    handler.run(lambda: handler.accept())
    assert handler.paused and handler.waiting_since == clock.now
    assert handler.verdict.describe() == (
        "pool max-servers reached: instances needs 1, 0 free")
    assert pool.reclaims == 1 and len(pool.launches) == 1
    clock.now += 5
    pool.room = 2
    assert step(handler) is False           # refilled, still launching
    assert not handler.paused and handler.waiting_since is None
    assert handler.verdict is None and len(pool.launches) == 2
    assert not declines.reasons


def test_min_ready_request_is_declined_at_quota():
    handler, store, pool, declines, _ = make(
        requestor="NodePool:min-ready", room=0)
    handler.run(lambda: handler.accept())
    assert declines.reasons == ["it would exceed quota"] and handler.done
    assert not store.locks


def test_aborted_launch_is_dropped_and_replaced_when_quota_frees():
    handler, store, pool, declines, clock = make()
    handler.run(lambda: handler.accept())
    first = pool.launches[0]
    first.finish(Outcome.ABORTED)            # a cloud quota error
    pool.room = 1                            # the aborted node still counts
    assert step(handler)                     # _drop_aborted
    assert handler.paused and handler.waiting_since == clock.now
    assert f"node/{first.node.id}" not in store.locks
    assert step(handler) is False            # no room yet: still waiting
    assert len(pool.launches) == 1 and pool.reclaims == 1
    pool.room = 2
    assert step(handler) is False            # relaunched
    assert len(pool.launches) == 2 and not declines.reasons
    pool.launches[1].finish(Outcome.READY)
    assert step(handler)
    assert stored_request(store, handler)["nodes"] == [pool.committed[1]]


def test_unavailable_offering_gives_the_request_back_undeclined():
    handler, store, pool, declines, _ = make()
    pool.unavailable_labels["small"] = "offering sub-1/t3.medium unavailable"
    handler.run(lambda: handler.accept())
    req = stored_request(store, handler)
    assert req["state"] == RequestState.REQUESTED and not req["declined_by"]
    assert handler.done and not declines.reasons and not store.locks


# -- decline ------------------------------------------------------------------------
def test_a_failed_node_declines_once_every_launch_has_finished():
    handler, store, pool, declines, _ = make(["small", "small"])
    handler.run(lambda: handler.accept())
    pool.launches[0].finish(Outcome.FAILED)
    assert step(handler) is False            # the other still runs
    pool.launches[1].finish(Outcome.READY)
    assert step(handler)
    assert declines.reasons == ["a node failed to launch"]
    ready = store.nodes[pool.launches[1].node.id]
    assert ready["allocated_to"] is None     # deallocated, a spare now
    assert handler.done and not store.locks


def test_an_unexpected_error_declines_the_request():
    handler, store, pool, declines, _ = make()

    def broken(label_name):
        raise RuntimeError("bad label")
    pool.new_node = broken
    handler.run(lambda: handler.accept())
    assert declines.reasons == ["an error occurred while handling it"]
    assert pool.released == 1 and not pool.reserved   # reservation back


# -- ZooKeeper trouble ----------------------------------------------------------------
def test_zookeeper_trouble_on_accept_is_retried_after_the_delay():
    handler, store, pool, declines, clock = make()
    store.trouble["store_request"] = [ConnectionLoss()]
    action = lambda: handler.accept()           # noqa: E731
    handler.run(action)
    assert handler.retry is action and not handler.accepted
    assert handler.check() is None               # not before the delay
    clock.now += RETRY_DELAY
    assert step(handler)
    assert handler.accepted and len(pool.launches) == 1
    assert not declines.reasons


def test_launch_retry_after_trouble_locking_the_new_node():
    handler, store, pool, declines, clock = make()
    store.trouble["lock_new_node"] = [zk_errors.LockError("timeout")]
    handler.run(lambda: handler.accept())
    assert handler.retry is not None and not pool.launches
    assert pool.released == 1 and not pool.reserved    # quota given back
    orphan = next(iter(store.nodes))                   # left for cleanup
    assert store.nodes[orphan]["state"] == NodeState.INIT
    clock.now += RETRY_DELAY
    assert step(handler)
    assert len(pool.launches) == 1 and not declines.reasons
    assert pool.launches[0].node.id != orphan


def test_unsaved_reuse_is_written_again_before_anything_else():
    handler, store, pool, _, clock = make()
    spare = store.add_spare("0000000099", "small")
    pool.spare_nodes["small"] = [spare]
    store.trouble["store_node"] = [ConnectionLoss()]
    handler.run(lambda: handler.accept())
    assert store.nodes[spare.id]["allocated_to"] is None   # not written
    assert f"node/{spare.id}" in store.locks               # but ours
    assert step(handler)                                   # fulfil
    assert store.nodes[spare.id]["allocated_to"] == handler.request.id
    assert stored_request(store, handler)["nodes"] == [spare.id]


def test_trouble_while_disconnected_is_retried_not_declined():
    handler, store, pool, declines, _ = make()
    pool.new_node = lambda label: (_ for _ in ()).throw(OSError("socket"))
    handler.run(lambda: handler.accept(), connected=lambda: False)
    assert handler.retry is not None and not declines.reasons


def test_session_lost_writes_nothing_more():
    handler, store, pool, declines, _ = make()
    handler.run(lambda: handler.accept())
    handler.done = True                  # the pool worker let go
    pool.launches[0].finish(Outcome.READY)
    before = dict(store.requests)
    assert handler.check() is None
    handler.run(lambda: handler.decline("late"))
    assert store.requests == before and not declines.reasons


def test_vanished_request_frees_its_nodes_without_writing_it():
    handler, store, pool, declines, _ = make()
    handler.run(lambda: handler.accept())
    pool.launches[0].finish(Outcome.READY)
    del store.requests[handler.request.id]
    assert step(handler)
    assert handler.done and not declines.reasons
    node = store.nodes[pool.launches[0].node.id]
    assert node["allocated_to"] is None and not store.locks
    assert handler.request.id not in store.requests


def test_fits_is_what_a_successful_reservation_looks_like():
    assert FITS and not Verdict(False, "pool max-cores", "cores", 0, 2)
