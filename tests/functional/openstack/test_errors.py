"""Failures the cloud answers with, and how the launcher reacts to them.

The local OpenStack scripts the next creates: an HTTP error, Nova's quota
403, or servers that end in ERROR with a given fault.
"""

from __future__ import annotations

import logging

from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import (
    NodeStates, connect, label, pool_paused, post_count, provider,
    servers_by_node)


def test_error_servers_fail_the_node_after_launch_retries(env, cloud):
    env.write_config([provider(**{"launch-retries": 3})])
    env.start_launcher()
    states = NodeStates(env.client)
    # Not a capacity fault ("No valid host was found" marks the offering).
    cloud.fail_next_creates(3, kind="error", message="Build of instance "
                            "aborted: Failed to allocate the network(s).")
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    assert post_count(cloud) == 3              # one server per attempt
    wait_for(lambda: states.with_state("failed"), what="failed node")
    assert not states.with_state("aborted")
    # every partial server was deleted before the next attempt / at the end
    wait_for(lambda: not cloud.servers(), what="error servers deleted")


def test_error_then_success_is_a_retry(env, cloud):
    env.write_config([provider(**{"launch-retries": 2})])
    env.start_launcher()
    cloud.fail_next_creates(1, kind="error", message="Build of instance "
                            "aborted: Failed to allocate the network(s).")
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    assert post_count(cloud) == 2
    wait_for(lambda: len(cloud.servers()) == 1, what="error server deleted")
    assert list(servers_by_node(cloud)) == req["nodes"]


def test_quota_refusal_aborts_node_and_request_is_retried(env, cloud):
    env.write_config([provider(**{"launch-retries": 1})])
    env.start_launcher()
    states = NodeStates(env.client)
    cloud.fail_next_creates(1, kind="quota")
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"         # not failed: retried
    assert post_count(cloud) == 2
    aborted = wait_for(lambda: states.with_state("aborted"),
                       what="aborted node")
    assert aborted[0] not in req["nodes"]


def test_quota_fault_on_error_server_aborts_node(env, cloud):
    env.write_config([provider(**{"launch-retries": 1})])
    env.start_launcher()
    states = NodeStates(env.client)
    cloud.fail_next_creates(1, kind="error", message=(
        "Build of instance aborted: VolumeLimitExceeded: Maximum number of "
        "volumes allowed (10) exceeded for quota 'volumes'."), code=500)
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    wait_for(lambda: states.with_state("aborted"), what="aborted node")
    assert not states.with_state("failed")
    wait_for(lambda: len(cloud.servers()) == 1, what="error server deleted")


def test_http_500_on_create_fails_the_attempt_not_the_node(env, cloud):
    """A 500 on ``POST /servers`` is not repeated by anyone in the
    attempt (the POST is not idempotent: LimitedApi raises it at once, and
    the machine does not send it again); the next attempt launches."""
    env.write_config([provider(**{"launch-retries": 2})])
    env.start_launcher()
    cloud.fail_next_creates(1, kind="http", status=500)
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    assert post_count(cloud) == 2               # one per attempt


def test_quota_from_limits_pauses_pool_until_a_node_is_freed(env, cloud):
    cloud.configure(max_instances=1)
    env.write_config([provider()])
    env.start_launcher()
    first = env.zuul.submit(["small"])
    req = env.zuul.wait_state(first, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    second = env.zuul.submit(["small"])
    wait_for(lambda: pool_paused(env.client), what="pool paused")
    assert env.zuul.get_request(second)["state"] == "pending"
    assert post_count(cloud) == 1              # never asked the cloud
    nodes = env.zuul.accept(first)
    env.zuul.release(nodes)
    req = env.zuul.wait_state(second, {"fulfilled", "failed"}, timeout=30)
    assert req["state"] == "fulfilled"
    assert post_count(cloud) == 2


def test_ignore_provider_quota_lets_the_cloud_refuse(env, cloud):
    cloud.configure(max_instances=1)
    env.write_config([provider(pool_extra={"ignore-provider-quota": True,
                                           "max-servers": 2})])
    env.start_launcher()
    states = NodeStates(env.client)
    first = env.zuul.submit(["small"])
    assert env.zuul.wait_state(first, {"fulfilled"})["state"] == "fulfilled"
    env.zuul.submit(["small"])
    # The pool does not pause on the cloud's limits: it tries, Nova says
    # no, and the node is aborted (and replaced, again and again).
    wait_for(lambda: states.with_state("aborted"), what="aborted node")
    assert post_count(cloud) >= 2
    assert len(cloud.servers()) == 1


def test_console_log_on_keyscan_failure(env, cloud, caplog):
    cloud.configure(server_ip="127.0.0.1",
                    console_output="boot of {name}: kernel panic\n")
    images = [{"name": "jammy", "image-name": "ubuntu-jammy",
               "username": "zuul", "connection-port": 1}]
    env.write_config([provider(
        labels=[label(**{"console-log": True})],
        pool_extra={"host-key-checking": True},
        **{"boot-timeout": 1, "launch-retries": 1, "cloud-images": images})])
    env.start_launcher()
    caplog.set_level(logging.INFO, logger="nodepool.launcher.node")
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    wait_for(lambda: "kernel panic" in caplog.text, what="console log")
    assert "boot of np" in caplog.text


def test_foreign_servers_reduce_the_quota(env, cloud, clouds_yaml):
    """Behaviour 34: servers nodepool did not create count against the
    cloud's limits (and are never deleted)."""
    cloud.configure(max_instances=2)
    conn = connect(clouds_yaml)
    image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    pet = conn.compute.create_server(name="pet", image_id=image.id,
                                     flavor_id=flavor.id, networks="auto")
    env.write_config([provider()])
    env.start_launcher()
    first = env.zuul.submit(["small"])
    assert env.zuul.wait_state(first, {"fulfilled"})["state"] == "fulfilled"
    env.zuul.submit(["small"])
    wait_for(lambda: pool_paused(env.client), what="pool paused")
    assert post_count(cloud) == 2              # the pet's and ours
    assert pet.id in {s["id"] for s in cloud.servers()}
    conn.close()
