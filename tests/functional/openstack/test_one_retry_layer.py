"""One retry layer: ``LimitedApi`` alone repeats a throttled
``POST /servers``; the create machine never sends it again.

Counted at the local OpenStack (every POST it answered), in the API's
counters and at the limiter, with the launch attempts each node took.  A
5xx on the POST is repeated by nobody in the attempt: the POST is not
idempotent (Nova may have made the server before the answer was lost),
so the API raises it at once and the next launch attempt creates anew.
"""

from __future__ import annotations

from tests.functional.launcher.helpers import fulfil_all, quick_backoff
from tests.functional.openstack.helpers import (adapter_of, post_count,
                                                provider)

#: the old per-call throttle count; a storm longer than it must not fail
OLD_THROTTLE_ATTEMPTS = 6
RATE_SECONDS = 0.01         # 100 calls/s, a real limiter


def launch(env, count=1, timeout=60):
    return fulfil_all(env, [env.zuul.submit(["small"])
                            for _ in range(count)], timeout)


def test_a_5xx_on_create_is_repeated_by_no_layer_in_the_attempt(
        env, cloud, launch_attempts):
    env.write_config([provider(rate=RATE_SECONDS,
                               **{"launch-retries": 3})])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    cloud.fail_next_creates(1, kind="http", status=500)
    (node,) = launch(env)
    assert post_count(cloud) == 2               # one per attempt
    assert api.failures["create server"] == 1
    assert launch_attempts(node) == ["error.unknown", "ready"]
    assert api.limiter.stats.throttled == 0


def test_a_throttle_storm_longer_than_the_old_count_launches(
        env, cloud, launch_attempts):
    env.write_config([provider(rate=RATE_SECONDS)])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    storm = 2 * OLD_THROTTLE_ATTEMPTS
    cloud.fail_next_creates(storm, status=429)
    (node,) = launch(env)
    # One call outlasted the whole storm: every answer reached the cloud
    # and the limiter once, and no layer above repeated anything.
    assert post_count(cloud) == storm + 1
    assert api.limiter.stats.throttled == storm
    assert api.failures["create server"] == storm
    assert launch_attempts(node) == ["ready"]


def test_a_storm_over_a_burst_fails_no_node(env, cloud, launch_attempts):
    env.write_config([provider(rate=RATE_SECONDS,
                               pool_extra={"max-servers": 40})])
    api = adapter_of(env.start_launcher()).api
    quick_backoff(api)
    storm = 30 * OLD_THROTTLE_ATTEMPTS
    cloud.fail_next_creates(storm, status=429)
    nodes = launch(env, 30, timeout=120)
    assert post_count(cloud) == storm + 30
    assert api.limiter.stats.throttled == storm
    assert all(launch_attempts(n) == ["ready"] for n in nodes)
