"""``nodepool delete --now`` deletes the instance and the znode before it returns."""

from __future__ import annotations

import io

import yaml

from nodepool.cmd import nodepoolcmd
from nodepool.driver import fake

from tests.functional.launcher.helpers import fake_provider


def test_delete_now_removes_instance_and_znode(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    rid = env.zuul.submit(["small"])
    (node_id,) = env.zuul.wait_state(rid, {"fulfilled"})["nodes"]
    node = env.zuul.get_node(node_id)
    env.zuul.delete_request(rid)
    cloud = fake.cloud_for("fake-provider")
    assert node["external_id"] in cloud.instances
    # The CLI runs in its own "process": its own adapter and ZK client.
    out, err = io.StringIO(), io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = nodepoolcmd.main(["-c", env.config_path, "delete", node_id,
                               "--now"])
    assert rc == 0, err.getvalue()
    assert node_id in out.getvalue()
    assert node["external_id"] not in cloud.instances
    assert env.zuul.get_node(node_id) is None
    assert launcher is not None


def test_delete_now_for_provider_not_in_local_config(env, tmp_path):
    env.write_config([fake_provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    (node_id,) = env.zuul.wait_state(rid, {"fulfilled"})["nodes"]
    env.zuul.delete_request(rid)
    other = tmp_path / "other.yaml"
    data = yaml.safe_load(open(env.config_path))
    data["providers"][0]["name"] = "some-other-provider"
    other.write_text(yaml.safe_dump(data))
    err = io.StringIO()
    import contextlib
    with contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        rc = nodepoolcmd.main(["-c", str(other), "delete", node_id, "--now"])
    assert rc == 1
    assert (f"Provider fake-provider for node {node_id} not defined on this "
            "launcher") in err.getvalue()
