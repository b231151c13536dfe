"""The launcher and its installation id (``/nodepool/installation``)."""

from __future__ import annotations

import pytest

from nodepool.driver import fake
from nodepool.launcher.launcher import Launcher
from nodepool.zk.errors import BadZnode
from nodepool.zk.installation import INSTALLATION
from tests.functional.launcher.helpers import fake_provider


def test_launchers_of_one_ensemble_share_the_id_and_tag_with_it(env):
    env.write_config([fake_provider()])
    first = env.start_launcher()
    second = env.start_launcher()
    assert first.installation and first.installation == second.installation
    rid = env.zuul.submit(["small"])
    (node_id,) = env.zuul.wait_state(rid, {"fulfilled"})["nodes"]
    cloud = fake.cloud_for("fake-provider")
    (instance,) = cloud.instances.values()
    assert instance["metadata"]["nodepool_node_id"] == node_id
    assert instance["metadata"]["nodepool_installation"] == \
        first.installation


def test_an_unreadable_id_refuses_start_and_is_kept(env):
    env.write_config([fake_provider()])
    env.client.create(INSTALLATION, b"{broken", makepath=True)
    launcher = Launcher(env.config_path)
    try:
        with pytest.raises(BadZnode, match="/nodepool/installation"):
            launcher.start()
    finally:
        launcher.stop()
    assert env.client.get(INSTALLATION)[0] == b"{broken"
    assert fake.cloud_for("fake-provider").instances == {}
