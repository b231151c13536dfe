"""One layer handles a throttle: ``AwsApi`` (``LimitedApi``'s loop).

Through the real boto3 (its own retries off, as the driver builds it)
against the local AWS: each RequestLimitExceeded halves the limiter it
came through exactly once and the call is sent again.
"""

from __future__ import annotations

import boto3
import pytest

from nodepool.driver.aws.api import AwsApi


def test_each_throttle_halves_the_limiter_once(aws):
    api = AwsApi("aws", boto3.Session(), aws.boot["region"], rate=10.0,
                 backoff=0.01, max_backoff=0.05)
    limiter = api.read_limiter
    aws.local.inject_fault("RequestLimitExceeded",
                           action="DescribeKeyPairs", count=1)
    before = dict(aws.local.stats()["calls"])
    answer = api.read("describe_key_pairs")
    assert answer["KeyPairs"]
    assert aws.local.stats()["calls"]["DescribeKeyPairs"] - \
        before.get("DescribeKeyPairs", 0) == 2   # botocore retried nothing
    assert api.failures["describe_key_pairs"] == 1
    assert limiter.stats.throttled == 1
    assert limiter.effective_rate == pytest.approx(
        limiter.rate * limiter.backoff + limiter.recovery)

    aws.local.inject_fault("RequestLimitExceeded",
                           action="DescribeKeyPairs", count=2)
    api.read("describe_key_pairs")
    assert limiter.stats.throttled == 3     # one report per answer
    assert api.limiter.stats.throttled == 0
