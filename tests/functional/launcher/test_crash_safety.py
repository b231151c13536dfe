"""Crash safety of launches with the fake driver (issue 8, item 1).

The fake cloud lives inside the launcher's process, so a real ``kill -9``
cannot be shown here (see ``tests/functional/aws/test_crash_safety.py``).
These tests check the pieces against the real ZooKeeper instead:

- the create intent (attempt, token) is in the node's ``driver_data``
  before the create call reaches the cloud;
- the fake cloud honours the token like EC2's ClientToken;
- the broken states a killed launcher leaves -- a ``building`` node with
  an intent but no ``external_id`` whose instance exists anyway, a node
  left ``deleting`` -- are written with raw kazoo and a fresh launcher
  deletes node and instance, without the (60 s) leak cleanup.
"""

from __future__ import annotations

import json
import time

import pytest

from nodepool.driver import fake
from nodepool.driver.statemachine import launch_token
from nodepool.zk.installation import installation_id
from nodepool.launcher.deleter import needs_lookup
from nodepool.zk.models import Node, NodeState
from tests.functional.launcher.helpers import fake_provider, raw_node, wait_for

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"


def node_data(client, node_id: str) -> dict | None:
    if not client.exists(f"{NODES}/{node_id}"):
        return None
    data, _ = client.get(f"{NODES}/{node_id}")
    return json.loads(data) if data else None


def test_launch_token_is_deterministic_and_bounded():
    assert launch_token("0000000001", 1) == launch_token("0000000001", 1)
    assert launch_token("0000000001", 1) != launch_token("0000000001", 2)
    assert launch_token("0000000001", 1) != launch_token("0000000002", 1)
    assert len(launch_token("n" * 1000, 99)) <= 64


def test_fake_cloud_honours_client_token():
    cloud = fake.FakeCloud()
    first = cloud.create({"nodepool_node_id": "1"}, token="t1")
    assert cloud.create({"nodepool_node_id": "1"}, token="t1") == first
    other = cloud.create({"nodepool_node_id": "1"}, token="t2")
    assert other != first
    assert cloud.create({"nodepool_node_id": "1"}) not in (first, other)
    assert len(cloud.instances) == 3


@pytest.mark.parametrize("state, external_id, intent, expected", [
    (NodeState.BUILDING, None, True, True),
    (NodeState.BUILDING, "i-1", True, True),
    (NodeState.DELETING, None, True, True),
    (NodeState.DELETING, "i-1", True, False),
    (NodeState.USED, "i-1", True, False),
    (NodeState.BUILDING, None, False, False),
])
def test_needs_lookup(state, external_id, intent, expected):
    node = Node(id="0000000001", state=state, external_id=external_id,
                driver_data={"create": {"attempt": 1}} if intent else None)
    assert needs_lookup(node) is expected


def test_intent_written_before_create_call(env):
    env.write_config([fake_provider(**{"create-latency": 1.0})])
    launcher = env.start_launcher()
    cloud = fake.cloud_for("fake-provider")
    rid = env.zuul.submit(["small"], reuse=False)

    def intent_while_creating():
        if cloud.calls.get("create"):
            raise AssertionError("create finished before the intent "
                                 "was seen")
        for node_id in env.client.get_children(NODES) \
                if env.client.exists(NODES) else []:
            data = node_data(env.client, node_id) or {}
            create = (data.get("driver_data") or {}).get("create")
            if create:
                return node_id, create
        return None

    node_id, create = wait_for(intent_while_creating, timeout=10,
                               what="create intent before the create call")
    assert create["attempt"] == 1
    assert create["token"] == launch_token(node_id, 1,
                                           launcher.installation)
    assert create["started"] <= time.time()
    req = env.zuul.wait_state(rid, {"fulfilled"})
    assert req["nodes"] == [node_id]
    (iid,) = cloud.instances
    assert cloud.tokens == {create["token"]: iid}
    assert node_data(env.client, node_id)["external_id"] == iid


def test_building_node_without_id_deleted_with_tagged_instance(env):
    env.write_config([fake_provider()])
    cloud = fake.cloud_for("fake-provider")
    node_id = raw_node(env.client, "building", external_id=None,
                       driver_data={"create": {"attempt": 1, "token": "t",
                                               "started": time.time()}})
    # The create call completed after the launcher died: the cloud has
    # the instance (tagged with our installation, as every launch since
    # installations are tagged), ZooKeeper does not know its id.
    tags = {"nodepool_provider_name": "fake-provider",
            "nodepool_pool_name": "main",
            "nodepool_installation": installation_id(env.client)}
    orphan = cloud.create({**tags, "nodepool_node_id": node_id}, token="t")
    bystander = cloud.create({**tags, "nodepool_node_id": "9999999999"})
    # The same node id in another installation sharing the cloud, and an
    # instance with no installation tag (an older release's): not provably
    # this node's, so left to the leak cleanup's rule.
    theirs = cloud.create({**tags, "nodepool_node_id": node_id,
                           "nodepool_installation": "another-one"})
    untagged = cloud.create({"nodepool_node_id": node_id,
                             "nodepool_provider_name": "fake-provider",
                             "nodepool_pool_name": "main"})
    env.start_launcher()   # leak cleanup every 60 s: not the one deleting
    env.zuul.wait_node_gone(node_id, timeout=20)
    wait_for(lambda: orphan not in cloud.instances, timeout=10,
             what="orphaned instance deleted")
    assert {bystander, theirs, untagged} <= set(cloud.instances)


def test_building_node_without_intent_is_not_looked_up(env):
    """Nodes written by launchers before this change: deleted as before."""
    env.write_config([fake_provider()])
    cloud = fake.cloud_for("fake-provider")
    node_id = raw_node(env.client, "building", external_id=None)
    tagged = cloud.create({"nodepool_node_id": node_id,
                           "nodepool_provider_name": "fake-provider",
                           "nodepool_pool_name": "main"})
    env.start_launcher()
    env.zuul.wait_node_gone(node_id, timeout=20)
    # left to the two-pass leak cleanup
    assert tagged in cloud.instances


def test_deleting_node_of_dead_launcher_is_finished(env):
    env.write_config([fake_provider()])
    cloud = fake.cloud_for("fake-provider")
    iid = cloud.create({"nodepool_provider_name": "fake-provider",
                        "nodepool_pool_name": "main"})
    node_id = raw_node(env.client, "deleting", external_id=iid,
                       driver_data={"create": {"attempt": 1, "token": "x",
                                               "started": time.time()}})
    env.start_launcher()
    env.zuul.wait_node_gone(node_id, timeout=20)
    wait_for(lambda: iid not in cloud.instances, timeout=10,
             what="instance of the deleting node deleted")
