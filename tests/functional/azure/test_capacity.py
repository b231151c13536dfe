"""Azure's allocation failures mark the offering (location, size)
unavailable instead of spending launch retries (issue "pressure" item 2).
"""

from __future__ import annotations

import pytest

from tests.functional.launcher.helpers import wait_for


@pytest.mark.parametrize("code", [
    "AllocationFailed", "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest", "SkuNotAvailable"])
def test_capacity_codes_mark_the_offering(env, azure, code):
    azure.local.configure(fail_vm_create_next=1, fail_vm_create_code=code,
                          fail_vm_create_message="no room for the size")
    env.write_config([azure.provider(**{"launch-retries": 1})])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["azure"]
    manager.offerings.base_ttl = 1.5
    pool = manager.provider.pools["main"]
    key = manager.adapter.offering(pool, pool.labels["small"])
    assert key.endswith("/Standard_B2s")
    rid = env.zuul.submit(["small"])
    wait_for(lambda: manager.offerings.records.get_offering("azure", key),
             what=f"offering recorded after {code}")
    assert code in manager.offerings.records.get_offering(
        "azure", key).reason
    # launch-retries 1: a failed attempt would fail the request; the
    # capacity error aborts the node instead and the request is served
    # once the record expired.
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
    assert req["state"] == "fulfilled"
