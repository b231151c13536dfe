"""A rotated client secret: every ARM call and token request backs off.

The local Entra ID records every token request (``token_requests``); with
a refused secret each ARM call of the SDK starts with one, so the times
the server saw refused ones are the times the provider tried its cloud.
"""

from __future__ import annotations

import json

from tests.functional.backoff import (Refusal, assert_creates_back_off,
                                      assert_dead_endpoint_backs_off,
                                      assert_deletes_back_off, fast_backoff)
from tools.deadend import DeadEnd

__all__ = ["fast_backoff"]

MARKERS = ("AADSTS7000215", "Invalid client secret")


def refused(azure) -> list[float]:
    return [t for t, issued in azure.local.token_requests() if not issued]


def refusal(azure) -> Refusal:
    secret = azure.local.client_secret
    return Refusal(
        azure.provider(), "azure", MARKERS,
        attempts=lambda: refused(azure),
        # the auth file keeps the old secret; issued tokens expire too
        refuse=azure.local.rotate_secret,
        restore=lambda: azure.local.rotate_secret(secret),
        instances=lambda: azure.names("virtualMachines"))


def test_refused_secret_backs_off_creates_and_recovers(
        env, azure, fast_backoff, caplog):
    assert_creates_back_off(env, caplog, refusal(azure))


def test_refused_secret_backs_off_deletes_and_listings(
        env, azure, fast_backoff, caplog):
    # Tokens for less than azure-identity's refresh margin (5 min): every
    # call asks for a new one, so the rotation is seen at the next call
    # (with an hour-long token the SDK would keep the one it holds).
    azure.local.tokens.lifetime = 120.0
    # (the deleted-node worker passes every 0.5-1 s in these tests)
    assert_deletes_back_off(env, caplog, refusal(azure), bursts=7,
                            period=1.0)


def test_unreachable_resource_manager_backs_off(env, azure, tmp_path,
                                               fast_backoff, caplog):
    with DeadEnd() as dead:
        # Tokens from the local Entra ID, ARM at a port that drops every
        # connection (a dead load balancer in front of the endpoint).
        data = azure.local.auth_data()
        data["resourceManagerEndpointUrl"] = f"https://127.0.0.1:{dead.port}/"
        auth = tmp_path / "dead-arm.json"
        auth.write_text(json.dumps(data))
        assert_dead_endpoint_backs_off(
            env, caplog, azure.provider(**{"auth-path": str(auth)}),
            "azure", dead)
