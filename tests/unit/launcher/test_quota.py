"""PoolQuota: every limit, racing reservations, the recount clock, a cloud
quota that shrinks, ignore-provider-quota and the reclaim rule -- with an
injected clock, no ZooKeeper and no cloud."""

from __future__ import annotations

import threading

import pytest

from nodepool.config.model import Pool
from nodepool.driver.quota import Quota
from nodepool.launcher.quota import (FITS, PoolQuota, Verdict, pool_limits,
                                     reclaim_candidates, tenant_verdict,
                                     usage)
from nodepool.zk.models import Node, NodeState
from tests.unit.launcher.fakes import Clock

#: label name -> cost of one node
COSTS = {"small": Quota(instances=1, cores=2, ram=4096),
         "big": Quota(instances=1, cores=8, ram=32768),
         "gpu": Quota(instances=1, cores=4, ram=8192, gpus=1)}


class Cloud:
    """The provider's side: its quota now, and what it counts as used."""

    def __init__(self, limits: Quota | None = None,
                 unmanaged: Quota | None = None):
        self.limits = limits or Quota()
        self.unmanaged = unmanaged or Quota()
        self.used_calls = 0

    def provider_limits(self) -> Quota:
        return self.limits

    def provider_used(self, nodes) -> Quota:
        self.used_calls += 1
        return usage(nodes, node_cost) + self.unmanaged


def node_cost(node: Node) -> Quota:
    return Quota.from_resources(node.resources)


def make_node(i: int, label: str = "small", pool: str = "main",
              state: str = NodeState.READY, allocated: str | None = "r",
              provider: str = "p", age: float = 0.0) -> Node:
    node = Node(id=f"{i:010d}", state=state)
    node.type = [label]
    node.pool = pool
    node.provider = provider
    node.allocated_to = allocated
    node.resources = COSTS[label].values
    node.state_time = 1000.0 - age
    return node


def make_quota(nodes=(), cloud: Cloud | None = None, clock=None,
               ignore=False, births=lambda: None, **limits):
    cloud = cloud or Cloud()
    nodes = list(nodes)
    pool = Pool(name="main", provider_name="p", ignore_provider_quota=ignore,
                **limits)
    quota = PoolQuota(pool, "p", nodes=lambda: nodes,
                      label_cost=COSTS.__getitem__, node_cost=node_cost,
                      provider_limits=cloud.provider_limits,
                      provider_used=cloud.provider_used, births=births,
                      clock=clock or Clock())
    return quota, nodes, cloud


# -- the limits ---------------------------------------------------------------
@pytest.mark.parametrize("limits, used, label, name, resource, free", [
    ({"max_servers": 2}, 2, "small", "pool max-servers", "instances", 0),
    ({"max_cores": 9}, 4, "small", "pool max-cores", "cores", 1),
    ({"max_ram": 20000}, 4, "small", "pool max-ram", "ram", 3616),
    ({"max_resources": {"gpus": 1}}, 0, "gpu", None, None, None),
])
def test_each_pool_limit_stops_the_node_that_would_exceed_it(
        limits, used, label, name, resource, free):
    quota, nodes, _ = make_quota(
        [make_node(i) for i in range(used)], **limits)
    first = quota.check(COSTS[label])
    if name is None:        # max-resources: one gpu fits, a second does not
        assert first
        token = quota.reserve(COSTS[label]).reservation
        quota.commit(token, make_node(99, label))
        v = quota.check(COSTS[label])
        assert (v.fits, v.limit, v.resource, v.free, v.need) == (
            False, "pool gpus", "gpus", 0, 1)
        return
    assert not first
    assert (first.limit, first.resource, first.free) == (name, resource, free)
    assert first.describe().startswith(f"{name} reached: {resource} needs")


def test_max_cores_lets_small_nodes_through_and_stops_a_big_one():
    quota, nodes, _ = make_quota([make_node(1)], max_cores=9)
    assert quota.check(COSTS["small"])          # 2 + 2 <= 9
    v = quota.check(COSTS["big"])                # 2 + 8 > 9
    assert not v and (v.limit, v.free, v.need) == ("pool max-cores", 7, 8)


def test_max_ram_stops_at_the_exact_boundary():
    quota, nodes, _ = make_quota([make_node(1)], max_ram=8192)
    assert quota.check(COSTS["small"])          # 4096 + 4096 == 8192
    quota.reserve(COSTS["small"])
    v = quota.check(COSTS["small"])
    assert not v and (v.limit, v.resource, v.free, v.need) == (
        "pool max-ram", "ram", 0, 4096)


def test_unlimited_pool_keys_are_not_limits():
    pool = Pool(name="main", provider_name="p", max_servers=5)
    assert pool_limits(pool) == Quota(instances=5)


def test_only_our_pool_counts_against_pool_limits_but_all_against_cloud():
    cloud = Cloud(limits=Quota(instances=3))
    others = [make_node(i, pool="other") for i in range(2)]
    quota, nodes, _ = make_quota(others, cloud=cloud, max_servers=1)
    v = quota.reserve(COSTS["small"])
    assert v                                     # pool: 0 of 1
    v2 = quota.check(COSTS["small"])
    assert not v2 and v2.limit == "pool max-servers"
    quota2, _, _ = make_quota(others + [make_node(5, pool="main")],
                              cloud=cloud, max_servers=5)
    v3 = quota2.check(COSTS["small"])
    assert not v3 and (v3.limit, v3.resource, v3.free) == (
        "provider quota instances", "instances", 0)


def test_other_providers_nodes_do_not_count():
    quota, _, _ = make_quota([make_node(i, provider="q") for i in range(3)],
                             max_servers=1)
    assert quota.check(COSTS["small"])


def test_unmanaged_instances_count_against_the_cloud_quota():
    cloud = Cloud(limits=Quota(cores=10), unmanaged=Quota(cores=7))
    quota, _, _ = make_quota(cloud=cloud)
    v = quota.check(COSTS["small"])
    assert v is FITS
    v = quota.check(COSTS["big"])
    assert not v and v.limit == "provider quota cores" and v.free == 3


def test_never_fits_declines_what_no_amount_of_waiting_serves():
    cloud = Cloud(limits=Quota(ram=16384))
    quota, _, _ = make_quota(cloud=cloud, max_cores=16)
    assert quota.never_fits(COSTS["small"] + COSTS["small"])
    v = quota.never_fits(COSTS["big"] + COSTS["big"] + COSTS["small"])
    assert not v and v.limit == "pool max-cores"
    v = quota.never_fits(COSTS["big"])
    assert not v and v.limit == "provider quota ram"
    ignoring, _, _ = make_quota(cloud=cloud, ignore=True, max_cores=16)
    assert ignoring.never_fits(COSTS["big"])


def test_tenant_limits_count_every_provider_and_only_the_tenant():
    mine = [make_node(i) for i in range(3)]
    for n in mine[:2]:
        n.tenant_name = "t1"
    mine[1].provider = "elsewhere"
    mine[2].tenant_name = "t2"
    limits = {"t1": {"cores": 6}}
    assert tenant_verdict(limits, "t1", COSTS["small"], mine)   # 4 + 2
    v = tenant_verdict(limits, "t1", COSTS["big"], mine)
    assert not v and (v.limit, v.resource, v.free, v.need) == (
        "tenant-resource-limits of t1", "cores", 2, 8)
    assert tenant_verdict(limits, "t2", COSTS["big"] + COSTS["big"], mine)
    assert tenant_verdict(limits, None, COSTS["big"], mine)


# -- ignore-provider-quota and a shrinking cloud quota -------------------------
def test_ignore_provider_quota_skips_the_cloud_but_not_the_pool():
    cloud = Cloud(limits=Quota(instances=0))
    quota, _, _ = make_quota(cloud=cloud, ignore=True, max_servers=2)
    assert quota.ignore_provider_quota
    assert quota.reserve(COSTS["small"]) and quota.reserve(COSTS["small"])
    v = quota.reserve(COSTS["small"])
    assert not v and v.limit == "pool max-servers"
    assert cloud.used_calls == 0         # the cloud's usage is never asked


def test_a_cloud_quota_that_shrinks_stops_the_next_launch():
    cloud = Cloud(limits=Quota(cores=20))
    quota, nodes, _ = make_quota([make_node(1), make_node(2)], cloud=cloud)
    assert quota.check(COSTS["big"])                 # 4 + 8 <= 20
    cloud.limits = Quota(cores=10)                   # the account shrank
    v = quota.check(COSTS["big"])
    assert not v and v.limit == "provider quota cores" and v.free == 6
    assert quota.check(COSTS["small"])
    cloud.limits = Quota()                           # unknown: no limit
    assert quota.check(COSTS["big"])


# -- reservations ----------------------------------------------------------------
def test_racing_reservations_never_take_more_than_the_limit():
    quota, _, _ = make_quota(max_servers=10)
    got: list[Verdict] = []
    start = threading.Barrier(40)

    def racer():
        start.wait()
        got.append(quota.reserve(COSTS["small"]))

    threads = [threading.Thread(target=racer) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    won = [v for v in got if v]
    assert len(got) == 40 and len(won) == 10
    assert len({id(v.reservation) for v in won}) == 10
    assert all(v.limit == "pool max-servers" for v in got if not v)


def test_a_released_reservation_gives_its_room_back_at_once():
    quota, _, _ = make_quota(max_cores=4)
    a = quota.reserve(COSTS["small"])
    b = quota.reserve(COSTS["small"])
    assert a and b and not quota.check(COSTS["small"])
    quota.release(b.reservation)
    assert quota.check(COSTS["small"])
    quota.release(b.reservation)         # twice: no room is made up
    quota.reserve(COSTS["small"])
    assert not quota.check(COSTS["small"])


def test_a_committed_node_counts_until_the_cache_shows_it_or_ttl():
    clock = Clock()
    quota, nodes, _ = make_quota(clock=clock, max_servers=1)
    v = quota.reserve(COSTS["small"])
    node = make_node(7)
    quota.commit(v.reservation, node)
    clock.now += quota.usage_ttl + 0.1               # recount: recent counts
    assert not quota.check(COSTS["small"])
    nodes.append(node)                               # the cache shows it
    clock.now += quota.usage_ttl + 0.1
    assert not quota.check(COSTS["small"])           # counted once
    nodes.remove(node)                               # deleted
    clock.now += quota.usage_ttl + 0.1
    assert quota.check(COSTS["small"])
    # A committed node the cache never shows stops counting after the TTL.
    v = quota.reserve(COSTS["small"])
    quota.commit(v.reservation, make_node(8))
    clock.now += quota.usage_ttl + 0.1
    assert not quota.check(COSTS["small"])
    clock.now += quota.recent_ttl
    assert quota.check(COSTS["small"])


def test_usage_is_recounted_only_after_the_ttl():
    clock = Clock()
    cloud = Cloud(limits=Quota(instances=100))
    quota, nodes, _ = make_quota(clock=clock, cloud=cloud, max_servers=2)
    assert quota.check(COSTS["small"])
    nodes.extend([make_node(1), make_node(2)])       # appear in the cache
    assert quota.check(COSTS["small"])               # not recounted yet
    calls = cloud.used_calls
    clock.now += quota.usage_ttl / 2
    assert quota.check(COSTS["small"]) and cloud.used_calls == calls
    clock.now += quota.usage_ttl
    v = quota.check(COSTS["small"])
    assert not v and v.limit == "pool max-servers"
    nodes.clear()
    clock.now += quota.usage_ttl + 0.01
    assert quota.check(COSTS["small"])


def test_nodes_that_appear_are_counted_within_the_fresh_interval():
    # Three launchers fill a pool's last slots: each sees the others' new
    # node znodes (births) and recounts within FRESH_INTERVAL, not
    # USAGE_TTL later -- while nothing appears, the TTL holds.
    clock = Clock()
    born = [0]
    cloud = Cloud(limits=Quota(instances=100))
    quota, nodes, _ = make_quota(clock=clock, cloud=cloud, max_servers=12,
                                 births=lambda: born[0])
    assert quota.check(COSTS["small"])
    after = quota.fresh_interval * 1.5      # (no float edge at == )
    calls = cloud.used_calls
    for _ in range(5):      # nothing appears: no recount within the TTL
        clock.now += quota.fresh_interval
        assert quota.check(COSTS["small"])
    assert cloud.used_calls == calls
    # A peer creates 12 nodes: seen by the births, counted at once after
    # the fresh interval (the TTL is not over).
    clock.now += quota.usage_ttl + 1
    start = clock.now
    quota.check(COSTS["small"])             # recounted: the TTL is over
    nodes.extend(make_node(i) for i in range(12))
    born[0] += 12
    clock.now += quota.fresh_interval / 2
    assert quota.check(COSTS["small"])      # not yet: at most that often
    clock.now += after
    v = quota.check(COSTS["small"])
    assert not v and v.free == 0 and v.limit == "pool max-servers"
    assert clock.now - start < quota.usage_ttl
    # Our own reservations still count exactly in between.
    nodes.clear()
    born[0] += 1            # (a removal is no birth: a new node appears)
    clock.now += after
    assert quota.reserve(COSTS["small"])
    nodes.extend(make_node(i) for i in range(11))
    born[0] += 11
    clock.now += after
    assert not quota.check(COSTS["small"])  # 11 nodes + our reservation


def test_births_that_could_not_fill_the_room_left_do_not_recount():
    # 100 slots, 10 used: node znodes appearing 5 at a time (our own
    # launches, most often) cannot make one more node not fit until they
    # could cost the 90 free slots -- only then does quota walk the nodes
    # again before the TTL is over.
    clock = Clock()
    born = [0]
    cloud = Cloud(limits=Quota(instances=1000))
    quota, nodes, _ = make_quota([make_node(i) for i in range(10)],
                                 clock=clock, cloud=cloud, max_servers=100,
                                 births=lambda: born[0])
    assert quota.check(COSTS["small"])
    counted = {key: entry[0] for key, entry in quota._counted.items()}
    for _ in range(8):      # 40 births within the TTL: no recount
        born[0] += 5
        nodes.extend(make_node(100 + len(nodes)) for _ in range(5))
        clock.now += quota.fresh_interval
        assert quota.check(COSTS["small"])
    assert {k: e[0] for k, e in quota._counted.items()} == counted
    born[0] += 50           # 90 births: they could have filled the pool
    nodes.extend(make_node(100 + len(nodes)) for _ in range(50))
    clock.now += quota.fresh_interval
    v = quota.check(COSTS["small"])
    assert quota._counted["pool"][0] == clock.now   # recounted: 100 used
    assert not v and v.free == 0 and v.limit == "pool max-servers"


def test_without_births_the_ttl_alone_recounts():
    clock = Clock()
    quota, nodes, _ = make_quota(clock=clock, max_servers=1)
    assert quota.check(COSTS["small"])
    nodes.append(make_node(1))
    clock.now += quota.usage_ttl / 2
    assert quota.check(COSTS["small"])      # births unknown: the TTL waits
    clock.now += quota.usage_ttl
    assert not quota.check(COSTS["small"])


# -- reclaiming a ready node at quota --------------------------------------------
def test_reclaim_picks_the_oldest_unused_ready_node_of_the_pool():
    nodes = [make_node(1, allocated=None, age=10),
             make_node(2, allocated=None, age=50),
             make_node(3, allocated="r", age=99),
             make_node(4, allocated=None, age=80, pool="other"),
             make_node(5, allocated=None, age=70, state=NodeState.BUILDING),
             make_node(6, allocated=None, age=20)]
    order = [n.id for n in reclaim_candidates(nodes, "main")]
    assert order == ["0000000002", "0000000006", "0000000001"]


def test_reclaim_waits_the_interval_after_a_reclaimed_node():
    clock = Clock()
    quota, nodes, _ = make_quota(
        [make_node(1, allocated=None)], clock=clock, max_servers=1)
    assert [n.id for n in quota.reclaim_candidates()] == ["0000000001"]
    quota.reclaimed()
    clock.now += quota.reclaim_interval - 1
    assert quota.reclaim_candidates() == []
    clock.now += 1
    assert [n.id for n in quota.reclaim_candidates()] == ["0000000001"]


def test_verdict_describe_names_the_limit_and_what_is_free():
    v = Verdict(False, "pool max-cores", "cores", 2, 8)
    assert v.describe() == "pool max-cores reached: cores needs 8, 2 free"
    assert FITS.describe() == "within quota" and bool(FITS)
