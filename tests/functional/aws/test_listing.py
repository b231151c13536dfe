"""The instance listing under a stream of requests: every quota check asks
for it (to count the instances we do not manage), and each fetch is a
DescribeInstances of the whole account -- the costliest read there is,
and during a burst mostly of our own instances.  It is fetched again only
once it is older than upstream's CACHE_TTL (10 s)."""

from __future__ import annotations

import time

from tests.functional.aws.helpers import adapter_of
from tests.functional.launcher.helpers import fulfil_all

UPSTREAM_CACHE_TTL = 10.0


def test_requests_arriving_for_seconds_list_the_account_once_per_ttl(
        env, aws):
    # A vCPU quota makes every quota check count unmanaged instances.
    # Six waves of five requests, each fulfilled (1 s RunInstances) before
    # the next arrives: quota checks for at least 6 s.
    aws.local.configure(quotas={"ec2": {"L-1216C47A": 1000}},
                        run_instances_latency=1.0)
    env.write_config([aws.provider(pool_extra={"max-servers": 40})])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    before = adapter.listing.fetches
    started = time.monotonic()
    nodes = []
    for _ in range(6):
        nodes += fulfil_all(env, [env.zuul.submit(["small"])
                                  for _ in range(5)])
    elapsed = time.monotonic() - started
    assert len(nodes) == 30 and elapsed >= 6.0
    fetched = adapter.listing.fetches - before
    assert fetched <= 1 + int(elapsed / UPSTREAM_CACHE_TTL), (
        f"{fetched} listings in {elapsed:.1f} s")
