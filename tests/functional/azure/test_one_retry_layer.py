"""One retry layer: ``LimitedApi`` alone repeats a throttled or
transiently failed VM PUT; the create machine never sends it again.

Counted at the local Azure (every VM PUT it answered), in the API's
counters and at the limiter, with the launch attempts each node took.  A
PUT by name is idempotent, so the API repeats a 5xx on it.
"""

from __future__ import annotations

from tests.functional.launcher.helpers import fulfil_all, quick_backoff
from tests.functional.azure.helpers import adapter_of

VM_PUT = "PUT */virtualMachines/*"
VM_PUTS = ("PUT /subscriptions/{subscriptionId}/resourceGroups/"
           "{resourceGroupName}/providers/Microsoft.Compute/"
           "virtualMachines/{vmName}")
#: the old per-call throttle count; a storm longer than it must not fail
OLD_THROTTLE_ATTEMPTS = 8


def launch(env, count=1, timeout=60):
    return fulfil_all(env, [env.zuul.submit(["small"])
                            for _ in range(count)], timeout)


def test_a_transient_vm_put_error_is_repeated_by_the_api_only(
        env, azure, launch_attempts):
    env.write_config([azure.provider(**{"launch-retries": 3})])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    # Fewer 500s than the API's attempts: repeated inside the API, the
    # attempt never sees them.
    azure.local.configure(server_error_next=api.transient_attempts - 1,
                          server_error_match=VM_PUT)
    (node,) = launch(env)
    assert azure.calls(VM_PUTS) == api.transient_attempts
    assert api.failures["PUT vms"] == api.transient_attempts - 1
    assert launch_attempts(node) == ["ready"]
    # As many as the API's attempts: it gives up, and that is final for
    # the attempt -- the machine does not PUT again; the next attempt
    # makes the node.
    before = azure.calls(VM_PUTS)
    azure.local.configure(server_error_next=api.transient_attempts,
                          server_error_match=VM_PUT)
    (node,) = launch(env)
    assert azure.calls(VM_PUTS) - before == api.transient_attempts + 1
    attempts = launch_attempts(node)
    assert len(attempts) == 2 and attempts[-1] == "ready", attempts
    assert api.limiter.stats.throttled == 0


def test_a_throttle_storm_longer_than_the_old_count_launches(
        env, azure, launch_attempts):
    env.write_config([azure.provider(rate=20)])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    storm = 2 * OLD_THROTTLE_ATTEMPTS
    azure.local.configure(throttle_next=storm, throttle_match=VM_PUT,
                          retry_after=0.05)
    (node,) = launch(env)
    # One call outlasted the whole storm: every answer reached the cloud
    # and the limiter once, and no layer above repeated anything.
    assert azure.calls(VM_PUTS) == storm + 1
    assert api.limiter.stats.throttled == storm
    assert api.failures["PUT vms"] == storm
    assert launch_attempts(node) == ["ready"]


def test_a_storm_over_a_burst_fails_no_node(env, azure, launch_attempts):
    # At its floor (a tenth of the rate) the limiter still admits 20/s.
    env.write_config([azure.provider(rate=200,
                                     pool_extra={"max-servers": 40})])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    storm = 30 * OLD_THROTTLE_ATTEMPTS
    azure.local.configure(throttle_next=storm, throttle_match=VM_PUT,
                          retry_after=0.01)
    nodes = launch(env, 30, timeout=180)
    assert azure.calls(VM_PUTS) == storm + 30
    assert api.limiter.stats.throttled == storm
    assert all(launch_attempts(n) == ["ready"] for n in nodes)
