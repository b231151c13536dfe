"""The pool worker's head-of-line rules at quota, without ZooKeeper: the
worker is built on fakes of exactly what it uses of its launcher and its
provider manager (``LauncherSide``, ``ProviderSide``), its quota on
``PoolQuota`` with an injected clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodepool.config.model import Pool
from nodepool.driver.quota import Quota
from nodepool.launcher.poolworker import PoolWorker, Waiting
from nodepool.launcher.usagebook import ALONE
from nodepool.zk.models import Node, NodeRequest, NodeState, RequestState
from tests.unit.launcher.fakes import Clock

COSTS = {"small": Quota(instances=1, cores=1),
         "big": Quota(instances=1, cores=8)}


class Cache:
    """The node cache the worker reads (``zk.iter_nodes``)."""

    def __init__(self):
        self.nodes = []

    def iter_nodes(self, cached=True, want=None, shared=False,
                   current=True, ids=None):
        return [n for n in self.nodes if (want is None or want(n))
                and (ids is None or ids(n.id))]

    def node_births(self):
        return None     # the births are unknown: quota recounts by its TTL


def make_worker(max_cores=10, cloud=Quota()):
    labels = {name: SimpleNamespace(name=name, diskimage=None)
              for name in COSTS}
    pool = Pool(name="main", provider_name="p", max_cores=max_cores,
                labels=labels)
    provider = SimpleNamespace(name="p", pools={"main": pool},
                               max_concurrency=-1)
    manager = SimpleNamespace(
        adapter=SimpleNamespace(label_quota=lambda lb: COSTS[lb.name]),
        launches_nodes=True,
        node_cost=lambda node, pool=None: Quota.from_resources(
            node.resources),
        provider_limits=lambda: cloud, provider_used=lambda nodes: Quota(),
        label_usable=lambda label: True, image_available=lambda lb: True,
        owns=lambda node: True)
    launcher = SimpleNamespace(zk=Cache(), zk_ready=lambda: True,
                               stats=None, config=None, usage=ALONE,
                               pool_components=lambda fresh=False: [])
    clock = Clock()
    worker = PoolWorker(launcher, provider, pool, manager, clock=clock)
    return worker, clock


@pytest.fixture
def made():
    made = []
    yield lambda **kw: made.append(make_worker(**kw)) or made[-1]
    for worker, _ in made:
        worker.io.shutdown()


def request(*labels, tenant=None) -> NodeRequest:
    return NodeRequest(id="100-0000000001", state=RequestState.REQUESTED,
                       node_types=list(labels), tenant_name=tenant)


def node(node_id, label, spare=False) -> Node:
    return Node(id=node_id, provider="p", pool="main", type=[label],
                state=NodeState.READY if spare else NodeState.IN_USE,
                allocated_to=None if spare else "100-0000000009",
                resources={"cores": COSTS[label].values.get("cores", 0),
                           "instances": 1})


def waiting_handler(labels, since):
    return SimpleNamespace(paused=True, waiting_since=since,
                           request=request(*labels))


def test_nothing_waiting_lets_what_fits_through_and_counts_it(made):
    worker, _ = made(max_cores=10)
    waiting = Waiting(labels=set(), starved=False, taken=Quota())
    assert worker._passes_waiting(request("big"), waiting)       # 8 of 10
    assert waiting.taken == COSTS["big"] and not waiting.labels


def test_a_burst_at_quota_takes_one_request_per_label(made):
    # The pool is full; 30 requests of one label arrive within one pass:
    # the first is taken (it will wait), the other 29 are left for pools
    # that have room -- not taken to wait here too.
    worker, _ = made(max_cores=10)
    worker.launcher.zk.nodes = [node(str(i), "small") for i in range(10)]
    waiting = Waiting(labels=set(), starved=False, taken=Quota())
    taken = [worker._passes_waiting(request("small"), waiting)
             for _ in range(30)]
    assert taken == [True] + [False] * 29
    assert waiting.labels == {"small"}


def test_a_take_to_wait_in_flight_holds_its_label_back_next_pass(made):
    # The first request of a full pool is taken to wait; its take is still
    # in flight (no handler yet) when the next pass comes: that pass takes
    # no second request of its label -- and once the take has ended, its
    # handler (paused) holds the label instead.
    worker, _ = made(max_cores=10)
    worker.launcher.zk.nodes = [node(str(i), "small") for i in range(10)]
    first = worker._waiting()
    assert worker._passes_waiting(request("small"), first)
    worker._taking.add("100-0000000001")        # its take, in flight
    second = worker._waiting()
    assert second.labels == {"small"}
    assert not worker._passes_waiting(request("small"), second)
    worker._taking.discard("100-0000000001")    # taken, or let go
    assert worker._waiting().labels == set()


def test_ready_spares_cost_nothing_at_quota(made):
    # At quota with 3 ready unallocated nodes: three requests reuse them,
    # the fourth waits, the fifth is held back behind it.
    worker, _ = made(max_cores=10)
    worker.launcher.zk.nodes = (
        [node(str(i), "small") for i in range(7)]
        + [node(str(i), "small", spare=True) for i in range(7, 10)])
    waiting = Waiting(labels=set(), starved=False, taken=Quota())
    taken = [worker._passes_waiting(request("small"), waiting)
             for _ in range(5)]
    assert taken == [True, True, True, True, False]
    assert waiting.spares["small"] == 3 and waiting.taken == Quota()


def test_other_labels_pass_while_they_fit_then_wait_too(made):
    worker, _ = made(max_cores=10)
    waiting = Waiting(labels={"huge"}, starved=False, taken=Quota())
    assert worker._passes_waiting(request("big"), waiting)     # 8 of 10
    assert waiting.taken == COSTS["big"] and "big" not in waiting.labels
    # The next big does not fit on top of what this pass let through: it
    # is taken (and will wait), and holds back its own label from now on.
    assert worker._passes_waiting(request("big"), waiting)
    assert "big" in waiting.labels
    assert not worker._passes_waiting(request("big"), waiting)
    assert worker._passes_waiting(request("small"), waiting)   # 9 of 10


def test_same_label_as_a_waiting_request_keeps_its_order(made):
    worker, _ = made()
    waiting = Waiting(labels={"small"}, starved=False, taken=Quota())
    assert not worker._passes_waiting(request("small"), waiting)
    assert not worker._passes_waiting(request("big", "small"), waiting)


def test_starved_pool_takes_nothing_new(made):
    worker, clock = made()
    worker.handlers = [waiting_handler(["big"], since=clock.now)]
    assert not worker._waiting().starved
    clock.now += worker.starve_after - 0.1
    assert not worker._waiting().starved
    clock.now += 0.1
    waiting = worker._waiting()
    assert waiting.starved and waiting.labels == {"big"}
    assert not worker._passes_waiting(request("small"), waiting)


def test_a_request_that_can_never_fit_is_declined(made):
    worker, _ = made(max_cores=10, cloud=Quota(cores=12))
    assert worker.decline_reason(request("big")) is None
    assert worker.decline_reason(request("big", "small", "small")) is None
    assert worker.decline_reason(request("big", "small", "small", "small")) \
        == "it would exceed quota"           # 11 cores: the pool's 10
    cloudy, _ = made(max_cores=100, cloud=Quota(cores=12))
    assert cloudy.decline_reason(request("big", "big")) \
        == "it would exceed quota"           # 16 cores: the cloud's quota
