"""A refused access key: every EC2 / Service Quotas call backs off.

With the flag ``refuse_credentials`` the local AWS answers every signed
EC2 and Service Quotas call as AWS answers a deactivated key
(``AuthFailure``, ``UnrecognizedClientException``) and records when each
arrived: those are the times the provider tried its cloud.
"""

from __future__ import annotations

import logging

from tests.functional.backoff import (assert_backs_off, assert_logged_once,
                                      assert_recovered, fast_backoff)
from tests.functional.launcher.helpers import wait_for

__all__ = ["fast_backoff"]

MARKERS = ("AuthFailure", "validate the provided access credentials",
           "UnrecognizedClientException", "security token included")


def refused(aws) -> list[float]:
    return aws.local.stats()["refused"]


def test_refused_key_backs_off_creates_and_recovers(env, aws, fast_backoff,
                                                    caplog):
    caplog.set_level(logging.INFO)
    aws.local.configure(refuse_credentials=True)
    env.write_config([aws.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    wait_for(lambda: len(refused(aws)) >= 6, timeout=30,
             what="six refused calls")
    assert_backs_off(refused(aws), bursts=6)
    assert env.zuul.get_request(rid)["state"] == "pending"
    aws.local.configure(refuse_credentials=False)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=30)
    assert req["state"] == "fulfilled"
    assert len(aws.instances()) == 1
    assert_logged_once(caplog.records, "aws", "credentials refused", MARKERS)
    assert_recovered(caplog.records, "aws", "credentials refused")


def test_refused_key_backs_off_deletes_and_listings(env, aws, fast_backoff,
                                                    caplog):
    env.write_config([aws.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    nodes = env.zuul.accept(rid)
    caplog.set_level(logging.INFO)
    aws.local.configure(refuse_credentials=True)
    env.zuul.release(nodes)
    wait_for(lambda: len(refused(aws)) >= 6, timeout=30,
             what="six refused calls")
    # (the deleted-node worker passes every 0.5-1 s in these tests, and
    # the delete batcher waits up to half a second for company)
    assert_backs_off(refused(aws), bursts=6, period=2.0)
    assert env.zuul.get_node(nodes[0])["state"] == "deleting"
    aws.local.configure(refuse_credentials=False)
    assert len(aws.instances()) == 1       # not terminated meanwhile
    env.zuul.wait_node_gone(nodes[0])
    wait_for(lambda: not aws.instances(), what="instance terminated")
    assert_logged_once(caplog.records, "aws", "credentials refused", MARKERS)
    assert_recovered(caplog.records, "aws", "credentials refused")
