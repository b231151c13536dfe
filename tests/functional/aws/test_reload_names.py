"""Reloads that reuse or drop a provider name keep that provider's nodes.

Real ZooKeeper, the local AWS (moto behind ``tools.fakeaws``) and the
launcher in-process.  Before these checks, a static provider given the name
of an AWS provider -- as a duplicate in one file, or in place of the AWS
one on a reload -- deregistered the AWS provider's READY nodes and deleted
their records while the EC2 instances kept running.
"""

from __future__ import annotations

import logging

from tests.functional.aws.helpers import instance_id
from tests.functional.launcher.helpers import fake_provider, wait_for

STATIC_LAUNCHER = "static driver"


def static_provider(name: str) -> dict:
    # host-key-checking off: the launcher registers the host without
    # connecting to it (and never hands out this slot to anything real).
    return {"name": name, "driver": "static", "pools": [{
        "name": "main", "nodes": [{"name": "127.0.0.1", "labels": ["small"],
                                   "host-key-checking": False}]}]}


def fulfil(env) -> tuple[str, dict]:
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    return rid, req


def spare_and_in_use(env) -> tuple[str, str]:
    """One READY unallocated AWS node and one in use by our Zuul."""
    rid, req = fulfil(env)
    [in_use] = env.zuul.accept(rid)
    env.zuul.set_in_use([in_use])
    rid, req = fulfil(env)
    [spare] = req["nodes"]
    env.zuul.delete_request(rid)     # the launcher deallocates the node
    wait_for(lambda: env.zuul.get_node(spare)["allocated_to"] is None,
             what="spare deallocated")
    return spare, in_use


def running(aws, node: dict) -> bool:
    return bool(aws.instances(**{"instance-id": [instance_id(node)]}))


def test_duplicate_provider_name_on_reload_is_refused(env, aws, caplog):
    env.write_config([aws.provider("p")])
    launcher = env.start_launcher()
    spare, in_use = spare_and_in_use(env)
    before = {n: env.zuul.get_node(n) for n in (spare, in_use)}
    config, manager = launcher.config, launcher.provider_managers()["p"]
    caplog.set_level(logging.ERROR, logger="nodepool.Launcher")
    env.write_config([aws.provider("p"), static_provider("p")])
    wait_for(lambda: "duplicate provider 'p'" in caplog.text, timeout=10,
             what="the reload refused")
    assert "providers[1].name: duplicate provider 'p' (first at " \
           "providers[0])" in caplog.text
    assert launcher.config is config
    assert launcher.provider_managers() == {"p": manager}
    for node_id, old in before.items():
        node = env.zuul.get_node(node_id)
        assert node["state"] == old["state"] and running(aws, node)
    # The AWS provider still serves: the spare goes to the next request.
    _, req = fulfil(env)
    assert req["nodes"] == [spare]


def test_name_taken_over_by_another_driver_keeps_the_nodes(env, aws):
    env.write_config([aws.provider("p")])
    launcher = env.start_launcher()
    spare, in_use = spare_and_in_use(env)
    # The AWS provider goes; a static provider takes its name.
    env.write_config([static_provider("p")])

    def static_slot():
        return [i for i, n in env.zuul.nodes().items()
                if n["launcher"] == STATIC_LAUNCHER]
    [slot] = wait_for(static_slot, timeout=15, what="static slot registered")
    manager = launcher.provider_managers()["p"]
    for _ in range(2):      # two whole syncs after the slot appeared
        manager.adapter.slots.synced.clear()
        wait_for(manager.adapter.slots.synced.is_set, timeout=15,
                 what="static sync")
    # The AWS node the previous driver left is returned by Zuul.
    env.zuul.release([in_use])
    launcher.deleted_worker.run_once()
    assert env.zuul.get_node(spare)["state"] == "ready"
    assert env.zuul.get_node(in_use)["state"] == "used"
    assert running(aws, env.zuul.get_node(spare))
    assert running(aws, env.zuul.get_node(in_use))
    # A request gets the static slot, never the AWS spare.
    rid, req = fulfil(env)
    assert req["nodes"] == [slot]
    env.zuul.delete_request(rid)
    # The AWS provider returns: its used node is deleted the normal way
    # (instance terminated, then the record), its spare is served again.
    env.write_config([aws.provider("p")])
    used = env.zuul.get_node(in_use)
    env.zuul.wait_node_gone(in_use, timeout=30)
    wait_for(lambda: not running(aws, used), timeout=30,
             what="instance of the used node terminated")
    _, req = fulfil(env)
    assert req["nodes"] == [spare]
    # The static slot is not the AWS provider's to delete or hand out.
    assert env.zuul.get_node(slot)["launcher"] == STATIC_LAUNCHER


def test_removed_provider_keeps_its_nodes_until_it_returns(env, aws):
    env.write_config([aws.provider("p")])
    launcher = env.start_launcher()
    spare, in_use = spare_and_in_use(env)
    env.write_config([aws.provider("q")])     # renamed: "p" is gone
    wait_for(lambda: set(launcher.provider_managers()) == {"q"},
             timeout=10, what="provider renamed")
    env.zuul.release([in_use])
    launcher.deleted_worker.run_once()
    launcher.cleanup_worker.run_once()
    for node_id in (spare, in_use):
        node = env.zuul.get_node(node_id)
        assert node is not None and running(aws, node)
    assert env.zuul.get_node(in_use)["state"] == "used"
    env.write_config([aws.provider("p")])
    used = env.zuul.get_node(in_use)
    env.zuul.wait_node_gone(in_use, timeout=30)
    wait_for(lambda: not running(aws, used), timeout=30,
             what="instance of the used node terminated")
    assert env.zuul.get_node(spare)["state"] == "ready"


def test_name_given_to_another_cloud_driver_waits_for_the_old_nodes(
        env, aws, caplog):
    env.write_config([aws.provider("p")])
    launcher = env.start_launcher()
    spare, in_use = spare_and_in_use(env)
    caplog.set_level(logging.ERROR, logger="nodepool.Launcher")
    # Another cloud driver under the same name: its deletes would not
    # reach the EC2 instances, so it is left out while they exist.
    new = fake_provider("p")
    new["pools"][0]["labels"][0]["name"] = "small"
    env.write_config([new])

    def applied():
        manager = launcher.provider_managers().get("p")
        return "Provider p not started" in caplog.text or (
            manager is not None and manager.provider.driver == "fake")
    wait_for(applied, timeout=10, what="the reload applied")
    env.zuul.release([in_use])
    launcher.deleted_worker.run_once()
    assert env.zuul.get_node(in_use)["state"] == "used"
    assert "driver changed from aws to fake while 2 node(s)" in caplog.text
    assert launcher.provider_managers() == {}
    assert running(aws, env.zuul.get_node(spare))
    assert running(aws, env.zuul.get_node(in_use))
    env.write_config([aws.provider("p")])
    used = env.zuul.get_node(in_use)
    env.zuul.wait_node_gone(in_use, timeout=30)
    wait_for(lambda: not running(aws, used), timeout=30,
             what="instance of the used node terminated")
    assert env.zuul.get_node(spare)["state"] == "ready"
