"""Request routing: priority order, provider preference, pool priority, pause."""

from __future__ import annotations

import json

from tests.functional.launcher.helpers import fake_provider, wait_for

LABEL = [{"name": "small", "cloud-image": "fake-image"}]


def pool(name, max_servers=10, **kw):
    return {"name": name, "max-servers": max_servers, "labels": LABEL,
            **{k.replace("_", "-"): v for k, v in kw.items()}}


def pool_components(client):
    out = []
    path = "/nodepool/components/pool"
    if not client.exists(path):
        return out
    for child in client.get_children(path):
        data, _ = client.get(f"{path}/{child}")
        if data:
            out.append(json.loads(data))
    return out


def test_requests_taken_in_priority_order(env):
    zuul = env.zuul
    # Submitted before any launcher runs, in scrambled order.
    specs = [("300", 0), ("100", 5), ("200", 0), ("100", 0), ("200", -3),
             ("100", 5), ("300", -1)]
    ids = [zuul.submit(["small"], priority=p, relative_priority=rp)
           for p, rp in specs]
    expected = sorted(ids, key=lambda rid: (
        rid.split("-")[0], dict(zip(ids, specs))[rid][1], rid.split("-")[1]))
    env.write_config([fake_provider(max_concurrency=1)])
    env.start_launcher()
    for rid in ids:
        assert zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    # Node ids are sequential: their creation order is the acceptance order.
    by_node = sorted((zuul.get_request(r)["nodes"][0], r) for r in ids)
    assert [r for _, r in by_node] == expected


def test_relative_priority_lowered_before_acceptance_is_honoured(env):
    zuul = env.zuul
    a = zuul.submit(["small"], priority="200", relative_priority=0)
    b = zuul.submit(["small"], priority="200", relative_priority=0)
    zuul.set_request(b, relative_priority=-1)
    env.write_config([fake_provider(max_concurrency=1)])
    env.start_launcher()
    for rid in (a, b):
        zuul.wait_state(rid, {"fulfilled"})
    assert zuul.get_request(b)["nodes"][0] < zuul.get_request(a)["nodes"][0]


def test_provider_preference(env):
    env.write_config([fake_provider("prov-a"), fake_provider("prov-b")])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: len(pool_components(env.client)) == 2,
             what="two pool components")
    for preferred in ("prov-a", "prov-b", "prov-b", "prov-a"):
        rid = zuul.submit(["small"], provider=preferred)
        req = zuul.wait_state(rid, {"fulfilled"})
        assert zuul.get_node(req["nodes"][0])["provider"] == preferred
    rid = zuul.submit(["small"], provider="offline-provider")
    req = zuul.wait_state(rid, {"fulfilled"})
    assert zuul.get_node(req["nodes"][0])["provider"] in ("prov-a", "prov-b")


def test_label_served_elsewhere_is_deferred_not_declined(env):
    big = {"name": "big", "cloud-image": "fake-image"}
    env.write_config([
        fake_provider("small-only", pools=[pool("p")]),
        fake_provider("big-only", pools=[{"name": "p", "max-servers": 5,
                                          "labels": [big]}])])
    env.start_launcher()
    wait_for(lambda: len(pool_components(env.client)) == 2,
             what="two pool components")
    rid = env.zuul.submit(["big"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    assert req["declined_by"] == []   # the small-only pool never declined
    assert env.zuul.get_node(req["nodes"][0])["provider"] == "big-only"


def test_pool_priority_and_pause(env):
    env.write_config([fake_provider("prov", pools=[
        pool("first", max_servers=1, priority=1),
        pool("second", max_servers=5, priority=2)])])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: len(pool_components(env.client)) == 2,
             what="two pool components")
    r1 = zuul.submit(["small"])
    n1 = zuul.wait_state(r1, {"fulfilled"})["nodes"][0]
    assert zuul.get_node(n1)["pool"] == "first"
    nodes1 = zuul.accept(r1)
    # "first" is full: it accepts r2, pauses on quota, and while it is
    # paused the lower-priority pool serves the next request.
    r2 = zuul.submit(["small"])
    wait_for(lambda: any(c["name"] == "first" and c["paused"]
                         for c in pool_components(env.client)),
             what="first pool paused")
    r3 = zuul.submit(["small"])
    n3 = zuul.wait_state(r3, {"fulfilled"})["nodes"][0]
    assert zuul.get_node(n3)["pool"] == "second"
    assert zuul.get_request(r2)["state"] == "pending"
    zuul.release(nodes1)
    n2 = zuul.wait_state(r2, {"fulfilled"})["nodes"][0]
    assert zuul.get_node(n2)["pool"] == "first"


def test_quota_pause_and_resume(env):
    env.write_config([fake_provider("prov", pools=[pool("only", 1)])])
    env.start_launcher()
    zuul = env.zuul
    r1 = zuul.submit(["small"])
    zuul.wait_state(r1, {"fulfilled"})
    nodes = zuul.accept(r1)
    r2 = zuul.submit(["small"])
    wait_for(lambda: any(c["paused"] for c in pool_components(env.client)),
             what="pool paused")
    assert zuul.get_request(r2)["state"] == "pending"
    zuul.release(nodes)
    req = zuul.wait_state(r2, {"fulfilled"})
    assert req["nodes"] and req["nodes"][0] != nodes[0]
    wait_for(lambda: not any(c["paused"]
                             for c in pool_components(env.client)),
             what="pool unpaused")


def test_pool_with_max_servers_zero_declines(env):
    env.write_config([fake_provider("prov", pools=[pool("off", 0)])])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"failed"})
    assert len(req["declined_by"]) == 1


def test_node_set_larger_than_pool_declines(env):
    env.write_config([fake_provider("prov", pools=[pool("tiny", 2)])])
    env.start_launcher()
    rid = env.zuul.submit(["small"] * 3)
    assert env.zuul.wait_state(rid, {"failed", "fulfilled"})["state"] == \
        "failed"


def test_tenant_limits_defer_only_that_tenant(env):
    env.write_config([fake_provider()],
                     **{"tenant-resource-limits": [
                         {"tenant-name": "limited", "max-servers": 1}]})
    env.start_launcher()
    zuul = env.zuul
    r1 = zuul.submit(["small"], tenant="limited")
    zuul.wait_state(r1, {"fulfilled"})
    nodes = zuul.accept(r1)
    r2 = zuul.submit(["small"], tenant="limited")
    r3 = zuul.submit(["small"], tenant="other")
    zuul.wait_state(r3, {"fulfilled"})
    req2 = zuul.get_request(r2)
    assert req2["state"] == "requested" and req2["declined_by"] == []
    zuul.release(nodes)
    zuul.wait_state(r2, {"fulfilled"})
