"""One retry layer: ``LimitedApi`` alone repeats a throttled or
transiently failed RunInstances; the create machine never sends it again.

Counted at the local AWS (every RunInstances it answered), in the API's
counters and at the limiter, with the launch attempts each node took.
"""

from __future__ import annotations

from tests.functional.aws.helpers import adapter_of
from tests.functional.launcher.helpers import (fulfil_all, quick_backoff,
                                               wait_for)

#: the old per-call throttle count; a storm longer than it must not fail
OLD_THROTTLE_ATTEMPTS = 6


def run_instances(aws) -> int:
    return aws.local.stats()["calls"].get("RunInstances", 0)


def launch_one(env):
    (node,) = fulfil_all(env, [env.zuul.submit(["small"])], timeout=60)
    return node


def test_a_transient_create_error_is_repeated_by_the_api_only(
        env, aws, launch_attempts):
    env.write_config([aws.provider(**{"launch-retries": 3})])
    launcher = env.start_launcher()
    api = adapter_of(launcher).api
    quick_backoff(api)
    # Fewer 500s than the API's attempts: repeated inside the API, the
    # attempt never sees them.
    aws.local.inject_fault("InternalError", action="RunInstances",
                           count=api.transient_attempts - 1)
    node = launch_one(env)
    assert run_instances(aws) == api.transient_attempts
    assert api.failures["run_instances"] == api.transient_attempts - 1
    assert launch_attempts(node) == ["ready"]
    # As many as the API's attempts: it gives up, and that is final for
    # the attempt -- the machine does not send the call again; the next
    # attempt (a new ClientToken) makes the node.
    before = run_instances(aws)
    aws.local.inject_fault("InternalError", action="RunInstances",
                           count=api.transient_attempts)
    node = launch_one(env)
    assert run_instances(aws) - before == api.transient_attempts + 1
    assert launch_attempts(node) == ["error.unknown", "ready"]
    assert api.limiter.stats.throttled == 0


def test_a_throttle_storm_longer_than_the_old_count_launches(
        env, aws, launch_attempts):
    env.write_config([aws.provider(rate=100)])
    launcher = env.start_launcher()
    api = adapter_of(launcher).api
    quick_backoff(api)
    storm = 2 * OLD_THROTTLE_ATTEMPTS
    aws.local.inject_fault("RequestLimitExceeded", action="RunInstances",
                           count=storm)
    node = launch_one(env)
    # One call outlasted the whole storm: every answer reached the cloud
    # and the limiter once, and no layer above repeated anything.
    assert run_instances(aws) == storm + 1
    assert api.limiter.stats.throttled == storm
    assert api.failures["run_instances"] == storm
    assert launch_attempts(node) == ["ready"]


def test_a_storm_over_a_burst_fails_no_node(env, aws, launch_attempts):
    env.write_config([aws.provider(rate=100,
                                   pool_extra={"max-servers": 40})])
    launcher = env.start_launcher()
    api = adapter_of(launcher).api
    quick_backoff(api)
    aws.local.inject_fault("RequestLimitExceeded", action="RunInstances",
                           count=None)
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    # A storm of unlimited length over the whole burst, ended by hand.
    wait_for(lambda: api.limiter.stats.throttled >=
             3 * OLD_THROTTLE_ATTEMPTS, timeout=60, what="a long storm")
    aws.local.clear_faults()
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=90)
        assert req["state"] == "fulfilled", req
        assert launch_attempts(req["nodes"][0]) == ["ready"]
    assert not [n for n in env.zuul.nodes().values()
                if n.get("state") == "failed"]
