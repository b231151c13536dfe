"""Migrating in place: nodes upstream Nodepool's launcher wrote are read,
handed out, held, expired, deleted and cleaned up by ours.

Two record shapes are seeded, as upstream writes them (its ``Node.toDict``
key set, not ours):

- *new*: Nodepool 11 -- every key, ``connection_port`` and its legacy
  mirror ``ssh_port``, ``node_properties``, ``hold_expiration`` an int;
- *old*: an older release -- ``type`` a bare string, ``ssh_port`` without
  ``connection_port``, no ``node_properties``/``tenant_name``/``requestor``/
  ``driver_data``/``slot``, ``hold_expiration`` a string.

The instances behind them live in the fake cloud, tagged as upstream tags
them, so a delete must reach the cloud, and leak cleanup must see them as
known while their nodes exist.
"""

from __future__ import annotations

import json
import time

from nodepool.cmd.nodepoolcmd import main as nodepool_main
from nodepool.driver import fake
from tests.functional.launcher.helpers import fake_provider, wait_for

UPSTREAM_WORKER = "upstream-host-PoolWorker.fake-provider-main-0123abcd"


def _new_shape(instance: str, **over) -> dict:
    node = {
        "state": "ready", "state_time": time.time() - 30,
        "cloud": "fake", "provider": "fake-provider", "pool": "main",
        "type": ["small"], "allocated_to": None, "az": "az1",
        "region": "region1", "public_ipv4": "127.0.0.1",
        "private_ipv4": None, "public_ipv6": None, "host_id": "host-1",
        "interface_ip": "127.0.0.1", "connection_port": 22, "ssh_port": 22,
        "image_id": "fake-image", "launcher": UPSTREAM_WORKER,
        "created_time": time.time() - 60, "external_id": instance,
        "hostname": "np0000000001", "comment": None, "user_data": None,
        "hold_job": None, "host_keys": ["ssh-ed25519 AAAAC3Nza"],
        "username": "zuul", "connection_type": "ssh", "shell_type": None,
        "hold_expiration": None, "resources": {"cores": 1, "instances": 1,
                                               "ram": 1024},
        "slot": None, "attributes": None, "python_path": "auto",
        "tenant_name": None, "driver_data": None, "requestor": None,
        "node_properties": {"spot": False},
    }
    node.update(over)
    return node


def _old_shape(instance: str, **over) -> dict:
    node = _new_shape(instance, **over)
    node["type"] = node["type"][0] if isinstance(node["type"], list) \
        else node["type"]
    node["ssh_port"] = node.pop("connection_port")
    for key in ("node_properties", "tenant_name", "requestor",
                "driver_data", "slot"):
        node.pop(key, None)
    if node.get("hold_expiration") is not None:
        node["hold_expiration"] = str(node["hold_expiration"])
    return node


def _seed(client, body: dict) -> str:
    path = client.create("/nodepool/nodes/", json.dumps(body).encode(),
                         sequence=True, makepath=True)
    return path.rsplit("/", 1)[1]


def _upstream_instance(cloud, node_id: str | None = None) -> str:
    meta = {"nodepool_provider_name": "fake-provider",
            "nodepool_pool_name": "main"}
    if node_id:
        meta["nodepool_node_id"] = node_id
    return cloud.create(meta)


def _cli(env, capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = nodepool_main(["-c", env.config_path, *argv])
    return rc, capsys.readouterr().out


def _start(env, **top):
    env.write_config([fake_provider()], **top)
    return env.start_launcher(cleanup_interval=3600)


def test_ready_nodes_of_both_shapes_are_listed_and_handed_out(env, capsys):
    cloud = fake.cloud_for("fake-provider")
    ids = {}
    for shape, build in (("new", _new_shape), ("old", _old_shape)):
        instance = _upstream_instance(cloud)
        ids[shape] = _seed(env.client, build(instance))
        cloud.instances[instance]["metadata"]["nodepool_node_id"] = \
            ids[shape]
    _start(env)
    rc, out = _cli(env, capsys, "list", "--json")
    assert rc == 0
    listed = {n["id"]: n for n in json.loads(out)}
    assert set(ids.values()) <= set(listed)
    for node_id in ids.values():
        assert listed[node_id]["state"] == "ready"
        assert listed[node_id]["label"] == ["small"]
        assert listed[node_id]["provider"] == "fake-provider"
    # Both upstream nodes are spares: two requests take them, nothing new
    # is launched.
    before = cloud.calls.get("create", 0)
    rids = [env.zuul.submit(["small"]) for _ in range(2)]
    got = set()
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled"
        got |= set(req["nodes"])
    assert got == set(ids.values())
    assert cloud.calls.get("create", 0) == before
    # Rewritten by ours, each keeps what upstream wrote and gains nothing
    # that changes its meaning.
    old = env.zuul.get_node(ids["old"])
    assert old["connection_port"] == old["ssh_port"] == 22
    assert old["type"] == ["small"]
    assert old["launcher"] == UPSTREAM_WORKER
    assert old["host_keys"] == ["ssh-ed25519 AAAAC3Nza"]
    # ... and a used one is deleted through the cloud.
    for rid in rids:
        env.zuul.accept(rid)
    env.zuul.release(list(ids.values()))
    for node_id in ids.values():
        env.zuul.wait_node_gone(node_id)
    wait_for(lambda: not cloud.instances, what="upstream instances deleted")


def test_held_upstream_nodes_expire_by_either_shape(env, capsys):
    cloud = fake.cloud_for("fake-provider")
    now = time.time()
    expiring = {}
    for shape, build in (("new", _new_shape), ("old", _old_shape)):
        instance = _upstream_instance(cloud)
        expiring[shape] = _seed(env.client, build(
            instance, state="hold", state_time=now - 100,
            hold_job="tenant/project/job", comment="debug",
            hold_expiration=50))
    instance = _upstream_instance(cloud)
    kept = _seed(env.client, _old_shape(
        instance, state="hold", state_time=now - 100, hold_expiration=None))
    launcher = _start(env)
    rc, out = _cli(env, capsys, "list", "--detail")
    assert rc == 0 and "tenant/project/job" in out
    launcher.cleanup_worker.run_once()
    for node_id in expiring.values():
        env.zuul.wait_node_gone(node_id)
    node = env.zuul.get_node(kept)
    assert node["state"] == "hold"
    assert len(cloud.instances) == 1


def test_operator_hold_and_delete_of_upstream_nodes(env, capsys):
    cloud = fake.cloud_for("fake-provider")
    held_id = _seed(env.client, _old_shape(_upstream_instance(cloud)))
    gone_id = _seed(env.client, _new_shape(_upstream_instance(cloud)))
    _start(env)
    rc, _ = _cli(env, capsys, "hold", held_id, "--reason", "look at it")
    assert rc == 0
    node = env.zuul.get_node(held_id)
    assert node["state"] == "hold" and node["comment"] == "look at it"
    assert node["type"] == ["small"]
    rc, _ = _cli(env, capsys, "delete", gone_id)
    assert rc == 0
    env.zuul.wait_node_gone(gone_id)
    wait_for(lambda: len(cloud.instances) == 1, what="instance deleted")


def test_upstream_instances_are_known_to_leak_cleanup(env):
    cloud = fake.cloud_for("fake-provider")
    live = _upstream_instance(cloud, node_id="0000000000")
    node_id = _seed(env.client, _new_shape(live))
    cloud.instances[live]["metadata"]["nodepool_node_id"] = node_id
    leaked = _upstream_instance(cloud, node_id="9999999999")
    in_progress = _upstream_instance(cloud)          # no node id: not ours
    launcher = _start(env)
    for _ in range(3):
        launcher.cleanup_worker.run_once()
    wait_for(lambda: leaked not in cloud.instances, what="leak reaped")
    assert live in cloud.instances and in_progress in cloud.instances
    assert env.zuul.get_node(node_id)["state"] == "ready"
