"""Capacity errors are remembered and shared (offerings), and a request
falls back to another pool instead of failing (issue "pressure" items 2-3).

The fake cloud refuses every create of one pool with ``CapacityError`` (a
zone out of an instance type); real ZooKeeper, launchers in-process.
"""

from __future__ import annotations

from nodepool.driver import fake
from tests.functional.launcher.helpers import fake_provider, wait_for

POOLS = [{"name": name, "max-servers": 100, "labels": [
    {"name": "small", "cloud-image": "fake-image"}]}
    for name in ("east", "west")]


def _start(env, refuse, base_ttl=None):
    cloud = fake.cloud_for("fake-provider")
    cloud.no_capacity = set(refuse)
    env.write_config([fake_provider(pools=POOLS)])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["fake-provider"]
    if base_ttl is not None:
        manager.offerings.base_ttl = base_ttl
    return launcher, manager, cloud


def _label(manager, pool):
    pool = manager.provider.pools[pool]
    return pool, pool.labels["small"]


def test_requests_fall_back_to_the_pool_with_capacity(env):
    launcher, manager, cloud = _start(env, refuse={"east"})
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(30)]
    nodes = []
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled", req
        nodes += req["nodes"]
    assert {zuul.get_node(n)["pool"] for n in nodes} == {"west"}
    record = manager.offering_unavailable(*_label(manager, "east"))
    assert record is not None and record.strikes == 1
    assert record.pools == {"east": ["small"]}
    assert manager.offering_unavailable(*_label(manager, "west")) is None
    # While the record runs, no create goes to the refused pool.
    refused = cloud.calls["capacity_error:east"]
    more = [zuul.submit(["small"]) for _ in range(30)]
    for rid in more:
        assert zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
            "fulfilled"
    assert cloud.calls["capacity_error:east"] == refused


def test_with_no_capacity_anywhere_requests_wait_then_are_served(env):
    launcher, manager, cloud = _start(env, refuse={"east", "west"},
                                      base_ttl=2.0)
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(30)]
    wait_for(lambda: all(manager.offering_unavailable(*_label(manager, p))
                         for p in ("east", "west")),
             what="both offerings unavailable")
    wait_for(lambda: all(zuul.get_request(r)["state"] == "requested"
                         for r in rids), what="requests given back")
    # Capacity returns; within one record period every request is served,
    # and none failed meanwhile (capacity errors use no launch retry).
    cloud.no_capacity.clear()
    served = set()
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=30)
        assert req["state"] == "fulfilled", req
        served |= {zuul.get_node(n)["pool"] for n in req["nodes"]}
    # A success forgets the record of the offering that worked.
    keys = {f"{pool}/small" for pool in served}
    wait_for(lambda: not keys & {r.key for r in
                                 launcher.zk.iter_offerings("fake-provider")},
             what="records removed after successes")


def test_every_launcher_sees_the_record_and_it_survives_a_restart(env):
    first, manager, cloud = _start(env, refuse={"east"})
    # Enough requests that the refused pool takes some (both pools race).
    rids = [env.zuul.submit(["small"]) for _ in range(10)]
    for rid in rids:
        assert env.zuul.wait_state(rid, {"fulfilled", "failed"})[
            "state"] == "fulfilled"
    wait_for(lambda: manager.offering_unavailable(*_label(manager, "east")),
             what="record written")
    second = env.start_launcher()
    other = second.provider_managers()["fake-provider"]
    wait_for(lambda: other.offering_unavailable(*_label(other, "east")),
             timeout=5, what="the second launcher sees the record")
    first.stop()
    third = env.start_launcher()
    again = third.provider_managers()["fake-provider"]
    assert again.offering_unavailable(*_label(again, "east")) is not None


def test_no_create_goes_to_an_unavailable_offering(env):
    # A record written by another launcher (here: before any request):
    # the cloud would even have capacity, but nothing is asked of it.
    launcher, manager, cloud = _start(env, refuse=set())
    pool, label = _label(manager, "east")
    manager.capacity_error(pool, label, "InsufficientInstanceCapacity")
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled", req
    pools = {i["metadata"]["nodepool_pool_name"]
             for i in cloud.instances.values()}
    assert pools == {"west"}


def test_a_malformed_offering_record_blocks_nothing(env, caplog):
    # Bad bytes and bad shapes under /nodepool/offerings: each is skipped
    # with one warning naming its znode; requests are served meanwhile.
    launcher, manager, cloud = _start(env, refuse=set())
    bad = {"fake-provider:broken": b"{not json",
           "fake-provider:shape": b'{"provider": "fake-provider", '
                                  b'"key": "east/small", "until": "soon"}',
           "fake-provider:bytes": b"\xff\xfe"}
    for name, data in bad.items():
        env.client.create(f"/nodepool/offerings/{name}", data,
                          makepath=True)
    wait_for(lambda: set(bad) <= set(launcher.zk.caches.children(
        "/nodepool/offerings")), what="records in the cache")
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled", req
    assert list(launcher.zk.iter_offerings("fake-provider")) == []
    for name in bad:
        hits = [r for r in caplog.records
                if f"/nodepool/offerings/{name}" in r.getMessage()]
        assert len(hits) == 1, (name, [r.getMessage() for r in hits])
