"""EC2's capacity errors mark the offering (subnet, type) unavailable for
every launcher instead of failing or hammering it (issue "pressure" item 2).
"""

from __future__ import annotations

import pytest

from tests.functional.launcher.helpers import wait_for


@pytest.mark.parametrize("code", [
    "InsufficientInstanceCapacity", "InsufficientHostCapacity",
    "Unsupported", "InsufficientFreeAddressesInSubnet",
    "MaxSpotInstanceCountExceeded"])
def test_capacity_codes_mark_the_offering(env, aws, code):
    aws.local.inject_fault(code, count=1)
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["aws"]
    manager.offerings.base_ttl = 1.5
    rid = env.zuul.submit(["small"])
    key = f"{aws.boot['subnet_id']}/t3.medium"
    wait_for(lambda: manager.offerings.records.get_offering("aws", key),
             what=f"offering {key} recorded after {code}")
    record = manager.offerings.records.get_offering("aws", key)
    assert record.strikes == 1 and code in record.reason
    assert record.pools == {"main": ["small"]}
    # Served once the record expired; no node failed, no retry spent.
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    assert aws.local.stats()["faults"]["RunInstances"] == {code: 1}
    assert not [n for n in env.zuul.nodes().values()
                if n.get("state") == "failed"]
