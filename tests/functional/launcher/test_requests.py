"""Requests served end to end by the launcher, the test playing Zuul."""

from __future__ import annotations

from nodepool.driver import fake

from tests.functional.launcher.helpers import fake_provider, wait_for


def test_request_fulfilled_with_spec_node_fields(env):
    env.write_config([fake_provider()])
    env.start_launcher()
    zuul = env.zuul
    rid = zuul.submit(["small", "small"], tenant="tenant-a",
                      extra={"span_info": {"trace": "abc"}})
    req = zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    assert req["span_info"] == {"trace": "abc"}     # preserved (§11)
    assert len(req["nodes"]) == 2
    for node_id in req["nodes"]:
        node = zuul.get_node(node_id)
        assert node["state"] == "ready"
        assert node["allocated_to"] == rid
        assert node["type"] == ["small"]
        assert node["provider"] == "fake-provider"
        assert node["pool"] == "main"
        assert node["hostname"] is None   # as upstream's cloud nodes
        assert node["external_id"].startswith("fake-")
        assert node["interface_ip"] == "127.0.0.1"
        assert node["connection_port"] == node["ssh_port"] == 22
        assert node["username"] == "zuul"
        assert node["tenant_name"] == "tenant-a"
        assert node["requestor"] == "zuul-sim"
        assert node["launcher"].endswith(
            [c for c in [node["launcher"]]][0].split("-")[-1])
        assert "-PoolWorker.fake-provider-main-" in node["launcher"]
        assert node["resources"]["instances"] == 1
        assert node["created_time"] is not None
        assert node["az"] == "fake-az1"
    # nodes are unlocked: we can lock them
    nodes = zuul.accept(rid)
    zuul.set_in_use(nodes)
    zuul.release(nodes)
    for node_id in nodes:
        zuul.wait_node_gone(node_id, timeout=15)
    wait_for(lambda: not fake.cloud_for("fake-provider").instances,
             what="instances deleted")


def test_unknown_label_fails_once_every_pool_declined(env):
    env.write_config([fake_provider()],
                     labels=[{"name": "small"}, {"name": "nowhere"}])
    env.start_launcher()
    rid = env.zuul.submit(["nowhere"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    assert len(req["declined_by"]) == 1
    assert "-PoolWorker.fake-provider-main-" in req["declined_by"][0]
