"""A refused access key: every EC2 / Service Quotas call backs off.

With the flag ``refuse_credentials`` the local AWS answers every signed
EC2 and Service Quotas call as AWS answers a deactivated key
(``AuthFailure``, ``UnrecognizedClientException``) and records when each
arrived: those are the times the provider tried its cloud.
"""

from __future__ import annotations

from tests.functional.backoff import (Refusal, assert_creates_back_off,
                                      assert_deletes_back_off, fast_backoff)

__all__ = ["fast_backoff"]

MARKERS = ("AuthFailure", "validate the provided access credentials",
           "UnrecognizedClientException", "security token included")


def refusal(aws) -> Refusal:
    return Refusal(
        aws.provider(), "aws", MARKERS,
        attempts=lambda: aws.local.stats()["refused"],
        refuse=lambda: aws.local.configure(refuse_credentials=True),
        restore=lambda: aws.local.configure(refuse_credentials=False),
        # (the proxy refuses the test's own calls too)
        instances=lambda: aws.instances(direct=True))


def test_refused_key_backs_off_creates_and_recovers(env, aws, fast_backoff,
                                                    caplog):
    assert_creates_back_off(env, caplog, refusal(aws))


def test_refused_key_backs_off_deletes_and_listings(env, aws, fast_backoff,
                                                    caplog):
    # (the deleted-node worker passes every 0.5-1 s in these tests, and
    # the delete batcher waits up to half a second for company)
    assert_deletes_back_off(env, caplog, refusal(aws), bursts=6,
                            period=2.0)
