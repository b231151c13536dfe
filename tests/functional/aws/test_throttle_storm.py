"""A RequestLimitExceeded storm in the middle of a partial-fulfilment burst
(issue "pressure" item 5): no request fails, no call goes out past the
limiter, and the limiter is back at the configured rate once calls go
through again."""

from __future__ import annotations

from tests.functional.aws.helpers import adapter_of
from tests.functional.launcher.helpers import wait_for
from tools.bench_budget import busiest

RATE = 10


def test_throttle_storm_during_partial_fulfilment(env, aws):
    aws.local.configure(launch="min")
    env.write_config([aws.provider(rate=RATE,
                                   pool_extra={"max-servers": 60})])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(30)]
    # The storm starts once the cloud has answered partially.
    wait_for(lambda: adapter.create_sizing.partial >= 1,
             what="a partial answer")
    aws.local.inject_fault("RequestLimitExceeded", action="RunInstances",
                           count=8)
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
        assert req["state"] == "fulfilled", req
    stats = aws.local.stats()
    assert stats["faults"]["RunInstances"] == {"RequestLimitExceeded": 8}
    assert stats["run_instances"]["launched"] == 30
    assert not [n for n in zuul.nodes().values()
                if n.get("state") == "failed"]
    limiter = adapter.api.limiter
    assert limiter.stats.throttled >= 1
    # The limiter holds through the storm: without it the create pool
    # sends the burst's calls within a second.  The times are the cloud's,
    # which bunch up behind a stall of its single-threaded server on a
    # loaded machine, so a second may show up to twice the rate; the
    # rate bound over 5 s windows is ``tools.bench_budget``'s figure.
    times = [r["time"] for r in stats["run_instances"]["instances"]]
    assert busiest(sorted(times), 1.0) <= 2 * RATE
    # Calls that go through step the rate back up: a few more requests and
    # the limiter is at the configured rate again.
    more = [zuul.submit(["small"]) for _ in range(20)]
    for rid in more:
        assert zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)[
            "state"] == "fulfilled"
    wait_for(lambda: limiter.effective_rate == limiter.rate, timeout=60,
             what="limiter back at the configured rate")
