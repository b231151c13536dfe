"""Throttling, quota, failed operations and 5xx as ARM answers them."""

from __future__ import annotations

import time

from tests.functional.azure.helpers import (
    adapter_of, fulfil, pool_paused, wait_gone)
from tests.functional.launcher.helpers import wait_for

VM_PUT = "PUT */virtualMachines/*"


def test_429_honours_retry_after_and_slows_the_limiter(env, azure):
    azure.local.configure(throttle_next=3, throttle_match=VM_PUT,
                          retry_after=0.5)
    env.write_config([azure.provider(rate=20)])
    launcher = env.start_launcher()
    started = time.monotonic()
    _, req = fulfil(env, ["small"])
    elapsed = time.monotonic() - started
    stats = azure.local.stats()
    assert stats["throttled"] == 3
    api = adapter_of(launcher).api
    # azure-core retried nothing by itself: the driver saw every 429 ...
    assert api.calls["PUT vms"] == 4
    assert api.failures["PUT vms"] == 3
    # ... told the limiter each time, and waited Retry-After each time.
    assert api.limiter.stats.throttled == 3
    assert api.limiter.effective_rate < api.limiter.rate
    assert elapsed >= 3 * 0.5
    assert env.zuul.get_node(req["nodes"][0])["state"] == "ready"


def test_transient_server_errors_are_retried(env, azure):
    azure.local.configure(server_error_next=2,
                          server_error_match="PUT */networkInterfaces/*")
    env.write_config([azure.provider()])
    launcher = env.start_launcher()
    fulfil(env, ["small"])
    assert azure.local.stats()["server_errors"] == 2
    assert adapter_of(launcher).api.failures["PUT nics"] == 2


def test_quota_pause_then_resume(env, azure):
    # Standard_B2s has 2 vCPUs of the BS family: two fit in 4.
    azure.local.configure(quota_limits={"standardBSFamily": 4})
    env.write_config([azure.provider()])
    env.start_launcher()
    zuul = env.zuul
    held = []
    for _ in range(2):
        rid, _ = fulfil(env, ["small"])
        held += zuul.accept(rid)
    rid = zuul.submit(["small"])
    wait_for(lambda: pool_paused(env.client), what="pool paused at quota")
    assert zuul.get_request(rid)["state"] == "pending"
    # Paused before the cloud had to refuse anything.
    assert azure.calls("PUT") == 2 * 3
    zuul.set_in_use(held[:1])
    zuul.release(held[:1])
    req = zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    wait_for(lambda: not pool_paused(env.client), what="pool unpaused")


def test_quota_error_aborts_node_and_request_is_retried(env, azure):
    azure.local.configure(quota_error_next=1)
    env.write_config([azure.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    # The first node was aborted (not retried in place) and replaced.
    [node_id] = req["nodes"]
    assert node_id != "0000000000"
    wait_for(lambda: env.zuul.get_node("0000000000") is None,
             what="aborted node removed")
    assert azure.calls("PUT /subscriptions/{subscriptionId}/resourceGroups/"
                       "{resourceGroupName}/providers/Microsoft.Compute/"
                       "virtualMachines/{vmName}") == 2
    # The aborted node's NIC and address were cleaned up.
    wait_gone(azure, "networkInterfaces", ["np0000000000-nic"])
    wait_gone(azure, "publicIPAddresses", ["np0000000000-pip4"])
    assert azure.names("virtualMachines") == {f"np{node_id}"}


def test_failed_create_operation_retries_then_fails(env, azure):
    # Not a capacity code (those abort the node and mark the offering).
    azure.local.configure(fail_vm_create_next=1,
                          fail_vm_create_code="OSProvisioningTimedOut",
                          fail_vm_create_message="OS provisioning timed out")
    env.write_config([azure.provider()])
    env.start_launcher()
    _, req = fulfil(env, ["small"])
    [node_id] = req["nodes"]
    node = env.zuul.get_node(node_id)
    # Attempt 1 failed; attempt 2 got a VM of its own name.
    assert node["external_id"] == f"np{node_id}-2"
    wait_gone(azure, "virtualMachines", [f"np{node_id}"])

    azure.local.configure(fail_vm_create_next=3)   # launch-retries: 3
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    failed = [n for n, data in env.zuul.nodes().items()
              if n != node_id and data.get("state") == "failed"]
    assert len(failed) <= 1
    # Every attempt's VM (and with it NIC, address, disk) is deleted.
    wait_for(lambda: azure.names("virtualMachines") == {node["external_id"]},
             what="failed VMs deleted")
    wait_for(lambda: len(azure.names("networkInterfaces")) == 1,
             what="failed NICs deleted")
    vm_puts = azure.calls("PUT /subscriptions/{subscriptionId}/"
                          "resourceGroups/{resourceGroupName}/providers/"
                          "Microsoft.Compute/virtualMachines/{vmName}")
    assert vm_puts == 2 + 3
