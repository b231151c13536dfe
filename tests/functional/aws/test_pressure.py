"""Two zones, one label, and a cloud that pushes back (issue "pressure"
items 1-3), against the local AWS: moto behind the EC2-like proxy, whose
fault rules and launch counts can differ per subnet.
"""

from __future__ import annotations

import threading
import time

from tests.functional.aws.helpers import adapter_of
from tests.functional.launcher.helpers import wait_for


def _two_zones(aws, east_only: bool = False, **extra) -> dict:
    """Pools east and west serve "small"; with ``east_only`` east also
    serves "small-east" (the same instance type: the same offering)."""
    east, west = aws.boot["subnet_ids"][:2]
    pools = [{"name": name, "max-servers": 100, "subnet-id": subnet,
              "security-group-id": aws.boot["security_group_id"],
              "host-key-checking": False, "labels": [aws.label()]}
             for name, subnet in (("east", east), ("west", west))]
    if east_only:
        pools[0]["labels"].append(aws.label("small-east"))
    return aws.provider(pools=pools, **extra)


def _pools_of(env, rids) -> list[str]:
    pools = []
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=120)
        assert req["state"] == "fulfilled", req
        pools += [env.zuul.get_node(n)["pool"] for n in req["nodes"]]
    return pools


def test_with_both_zones_refused_requests_wait_then_are_served(env, aws):
    # Both subnets answer InsufficientInstanceCapacity: 30 requests stay
    # requested (none failed, no launch retry spent) while both offerings
    # are unavailable, with a handful of refused calls, not one per node
    # per pass; once capacity returns they are served within one TTL.
    east, west = aws.boot["subnet_ids"][:2]
    for subnet in (east, west):
        aws.local.inject_fault("InsufficientInstanceCapacity", count=None,
                               subnet=subnet)
    env.write_config([_two_zones(aws, **{"launch-retries": 1})])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["aws"]
    ttl = 8.0
    manager.offerings.base_ttl = ttl
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    keys = {f"{east}/t3.medium", f"{west}/t3.medium"}
    wait_for(lambda: {o.key for o in manager.offerings.current()} == keys,
             what="both offerings recorded unavailable")
    # The calls that were in flight when the marks landed are answered.
    wait_for(lambda: manager.active_launches == 0,
             what="no launch in flight")
    refused = aws.local.stats()["faults"]["RunInstances"][
        "InsufficientInstanceCapacity"]
    # While both are out nothing fails and no create call goes out.
    deadline = time.monotonic() + ttl / 2
    while time.monotonic() < deadline:
        states = {env.zuul.get_request(r)["state"] for r in rids}
        assert "failed" not in states, states
        assert aws.local.stats()["faults"]["RunInstances"][
            "InsufficientInstanceCapacity"] == refused
        threading.Event().wait(0.1)      # an observation window
    assert refused <= 20, refused      # a handful per zone, not one per node
    aws.local.clear_faults()
    returned = time.monotonic()
    pools = _pools_of(env, rids)
    assert time.monotonic() - returned <= ttl + 10
    assert len(pools) == 30
    assert not [n for n in env.zuul.nodes().values()
                if n.get("state") == "failed"]
    assert len(aws.instances()) == 30              # instances = nodes


def test_a_zone_short_of_capacity_lets_the_other_zone_go_first(env, aws):
    # The east subnet starts one instance per call whatever MaxCount asks
    # (EC2 "launches as many as it can"); west has plenty.  A burst only
    # east serves records east's offering short (its partial answers leave
    # launches unstarted); the next burst, which both zones serve, goes to
    # west, while east still launches what only it serves.
    east, west = aws.boot["subnet_ids"][:2]
    # Calls take 0.5 s, as a real cloud's do: the burst is in flight in a
    # few calls when the first answers come back.
    aws.local.configure(launch_by_subnet={east: "min"},
                        run_instances_latency=0.5)
    env.write_config([_two_zones(aws, east_only=True)])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["aws"]
    first = [env.zuul.submit(["small-east"]) for _ in range(30)]
    assert _pools_of(env, first) == ["east"] * 30
    key = f"{east}/t3.medium"
    sizing = adapter_of(launcher).create_sizing
    wait_for(lambda: manager.offerings.short_record(key) is not None,
             what=f"offering {key} recorded short "
             f"({sizing.partial} partial answers)")
    record = manager.offerings.short_record(key)
    assert record.pools == {"east": ["small", "small-east"]}
    assert manager.offerings.unavailable(key) is None   # it still launches
    second = [env.zuul.submit(["small"]) for _ in range(30)]
    assert _pools_of(env, second) == ["west"] * 30
    third = [env.zuul.submit(["small-east"]) for _ in range(3)]
    assert _pools_of(env, third) == ["east"] * 3       # the only candidate
    assert len(aws.instances()) == 63              # instances = nodes
