"""A rotated client secret: every ARM call and token request backs off.

The local Entra ID records every token request (``token_requests``); with
a refused secret each ARM call of the SDK starts with one, so the times
the server saw refused ones are the times the provider tried its cloud.
"""

from __future__ import annotations

import json
import logging

from tests.functional.azure.helpers import fulfil
from tests.functional.backoff import (assert_backs_off, assert_logged_once,
                                      assert_recovered, fast_backoff)
from tests.functional.launcher.helpers import wait_for
from tools.deadend import DeadEnd

__all__ = ["fast_backoff"]

MARKERS = ("AADSTS7000215", "Invalid client secret")


def refused(azure) -> list[float]:
    return [t for t, issued in azure.local.token_requests() if not issued]


def test_refused_secret_backs_off_creates_and_recovers(
        env, azure, fast_backoff, caplog):
    caplog.set_level(logging.INFO)
    secret = azure.local.client_secret
    azure.local.rotate_secret()            # the auth file has the old one
    env.write_config([azure.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    wait_for(lambda: len(refused(azure)) >= 6, timeout=30,
             what="six refused token requests")
    assert_backs_off(refused(azure), bursts=6)
    assert env.zuul.get_request(rid)["state"] == "pending"
    assert not azure.names("virtualMachines")
    azure.local.rotate_secret(secret)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=30)
    assert req["state"] == "fulfilled"
    assert_logged_once(caplog.records, "azure", "credentials refused",
                       MARKERS)
    assert_recovered(caplog.records, "azure", "credentials refused")


def test_refused_secret_backs_off_deletes_and_listings(
        env, azure, fast_backoff, caplog):
    # Tokens for less than azure-identity's refresh margin (5 min): every
    # call asks for a new one, so the rotation is seen at the next call
    # (with an hour-long token the SDK would keep the one it holds).
    azure.local.tokens.lifetime = 120.0
    env.write_config([azure.provider()])
    env.start_launcher()
    rid, _ = fulfil(env, ["small"])
    nodes = env.zuul.accept(rid)
    vms = azure.names("virtualMachines")
    assert len(vms) == 1
    caplog.set_level(logging.INFO)
    secret = azure.local.client_secret
    azure.local.rotate_secret()            # issued tokens expire too
    env.zuul.release(nodes)
    wait_for(lambda: len(refused(azure)) >= 7, timeout=30,
             what="seven refused token requests")
    # (the deleted-node worker passes every 0.5-1 s in these tests)
    assert_backs_off(refused(azure), bursts=7, period=1.0)
    assert azure.names("virtualMachines") == vms
    assert env.zuul.get_node(nodes[0])["state"] == "deleting"
    azure.local.rotate_secret(secret)
    env.zuul.wait_node_gone(nodes[0])
    wait_for(lambda: not azure.names("virtualMachines"), what="VM deleted")
    assert_logged_once(caplog.records, "azure", "credentials refused",
                       MARKERS)
    assert_recovered(caplog.records, "azure", "credentials refused")


def test_unreachable_resource_manager_backs_off(env, azure, tmp_path,
                                               fast_backoff, caplog):
    caplog.set_level(logging.INFO)
    with DeadEnd() as dead:
        # Tokens from the local Entra ID, ARM at a port that drops every
        # connection (a dead load balancer in front of the endpoint).
        data = azure.local.auth_data()
        data["resourceManagerEndpointUrl"] = f"https://127.0.0.1:{dead.port}/"
        auth = tmp_path / "dead-arm.json"
        auth.write_text(json.dumps(data))
        env.write_config([azure.provider(**{"auth-path": str(auth)})])
        env.start_launcher()
        env.zuul.submit(["small"])
        wait_for(lambda: len(dead.connections()) >= 6, timeout=30,
                 what="six connections to the dead endpoint")
        assert_backs_off(dead.connections(), bursts=6)
    assert_logged_once(caplog.records, "azure", "endpoint unreachable",
                       (f"127.0.0.1:{dead.port}",))
