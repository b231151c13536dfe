"""A refused password or a dead Keystone: every call backs off, one line.

The local OpenStack records every password auth (``auth_attempts``); with
a wrong password every API call of the SDK starts with one, so the times
the server saw them are the times the provider tried its cloud.
"""

from __future__ import annotations

import logging

import yaml

from tests.functional.backoff import (Refusal, assert_creates_back_off,
                                      assert_dead_endpoint_backs_off,
                                      assert_deletes_back_off, fast_backoff)
from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import (connect, provider,
                                                servers_by_node)
from tools.deadend import DeadEnd

__all__ = ["fast_backoff"]

MARKERS = ("HTTP 401", "requires authentication")


def refused(cloud) -> list[float]:
    return [t for t, ok in cloud.auth_attempts() if not ok]


def refusal(cloud) -> Refusal:
    return Refusal(
        provider(), "os", MARKERS, attempts=lambda: refused(cloud),
        # clouds.yaml keeps the old password; tokens are revoked as well
        refuse=lambda: cloud.set_password("rotated"),
        restore=lambda: cloud.set_password("secret"),
        instances=cloud.servers)


def test_wrong_password_backs_off_creates_and_recovers(
        env, cloud, fast_backoff, caplog):
    req = assert_creates_back_off(env, caplog, refusal(cloud))
    assert list(servers_by_node(cloud)) == req["nodes"]


def test_refused_password_backs_off_deletes_and_listings(
        env, cloud, fast_backoff, caplog):
    # (the deleted-node worker passes every 0.5-1 s in these tests)
    assert_deletes_back_off(env, caplog, refusal(cloud), bursts=7,
                            period=1.0)


def test_unreachable_keystone_backs_off(env, cloud, clouds_yaml,
                                        fast_backoff, caplog):
    with DeadEnd() as dead:
        data = yaml.safe_load(open(clouds_yaml))
        data["clouds"]["fake"]["auth"]["auth_url"] = \
            f"http://127.0.0.1:{dead.port}/identity/v3"
        with open(clouds_yaml, "w") as f:
            yaml.safe_dump(data, f)
        assert_dead_endpoint_backs_off(env, caplog, provider(), "os", dead)


def test_leak_cleanup_waits_out_the_back_off_and_keeps_its_suspects(
        env, cloud, clouds_yaml, fast_backoff, caplog):
    env.write_config([provider()])
    launcher = env.start_launcher()
    conn = connect(clouds_yaml)
    image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    net = conn.network.find_network("private", ignore_missing=False)
    leaked = conn.compute.create_server(
        name="leak", image_id=image.id, flavor_id=flavor.id,
        networks=[{"uuid": net.id}],
        metadata={"nodepool_provider_name": "os",
                  "nodepool_node_id": "0000099999"}).id
    conn.close()
    cleanup = launcher.cleanup_worker
    cleanup.run_once()                     # first sighting: a suspect
    suspect = ("os", "instances", leaked)
    assert suspect in cleanup._suspects
    caplog.set_level(logging.INFO)
    cloud.set_password("rotated")
    adapter = launcher.provider_managers()["os"].adapter
    # The listing that pass made is cached for 2 s: once it is stale, a
    # pass must ask the cloud (or wait out the back-off).
    wait_for(lambda: adapter.poller.snapshot(2.0) is None,
             what="the server listing to go stale")
    before = len(refused(cloud))
    for _ in range(30):
        cleanup.run_once()
    # A few probes at most (0.1 s doubling), never one per pass, and the
    # suspect survived every pass that could not list.
    assert len(refused(cloud)) - before <= 6
    assert suspect in cleanup._suspects
    assert leaked in {s["id"] for s in cloud.servers()}
    cloud.set_password("secret")
    wait_for(lambda: (cleanup.run_once(),
                      leaked not in {s["id"] for s in cloud.servers()})[1],
             timeout=30, what="leaked server deleted")
    assert not [r for r in caplog.records if r.levelno >= logging.INFO
                and r.exc_info]
