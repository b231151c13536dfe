"""Two installations on one AWS account never touch each other's resources.

Installation A and installation B are two launchers on two ZooKeeper
chroots (so two sets of node ids, both counting from 0000000000), with the
same provider name ``aws`` against the same local AWS.  Upstream's leak
rule alone would have each delete the other's instances whose node ids it
does not know; the ``nodepool_installation`` tag keeps them apart, while a
genuine leak of either installation, and an upstream-style leak carrying
no installation tag, are still reaped.
"""

from __future__ import annotations

import json
import time

from nodepool.zk.installation import installation_id
from tests.functional.aws.helpers import adapter_of, instance_id, tags
from tests.functional.launcher.helpers import wait_for

#: nodes per installation: different counts, so each has node ids the
#: other does not know (A's 0000000012.. are unknown to B)
NODES_A, NODES_B = 18, 12
TAG = "nodepool_installation"


def _provider(aws, **extra) -> dict:
    return aws.provider(pool_extra={"max-servers": 30}, **extra)


def _launch(env, count: int) -> list[str]:
    return [env.zuul.submit(["small"]) for _ in range(count)]


def _ready_nodes(env, requests) -> dict[str, str]:
    """node id -> instance id of the fulfilled ``requests``."""
    out = {}
    for rid in requests:
        request = env.zuul.wait_state(rid, {"fulfilled", "failed"},
                                      timeout=60)
        assert request["state"] == "fulfilled", request
        (node_id,) = request["nodes"]
        out[node_id] = instance_id(env.zuul.get_node(node_id))
    return out


def _installation_of(env) -> str:
    data, _ = env.client.get("/nodepool/installation")
    return json.loads(data)["installation_id"]


def _alive(aws) -> set[str]:
    return {i["InstanceId"] for i in aws.instances()}


def _passes(launcher, count: int) -> None:
    adapter = adapter_of(launcher)
    for _ in range(count):
        adapter.forget_listing()      # list_instances caches for 2 s
        launcher.cleanup_worker.run_once()


def test_installations_never_delete_each_others_instances(env, env_b, aws):
    # A batches its creates (the default), B sends one call per node (the
    # attempt's ClientToken: must not name A's node of the same id).
    env.write_config([_provider(aws)])
    env_b.write_config([_provider(aws, **{"batch-creates": False})])
    launcher_a = env.start_launcher()
    launcher_b = env_b.start_launcher()
    id_a, id_b = _installation_of(env), _installation_of(env_b)
    assert id_a != id_b
    assert (launcher_a.installation, launcher_b.installation) == (id_a, id_b)

    requests_a = _launch(env, NODES_A)
    requests_b = _launch(env_b, NODES_B)
    nodes_a = _ready_nodes(env, requests_a)
    nodes_b = _ready_nodes(env_b, requests_b)
    # The same node ids in both, each with its own instance.
    assert set(nodes_b) <= set(nodes_a)
    instances_a, instances_b = set(nodes_a.values()), set(nodes_b.values())
    assert len(instances_a) == NODES_A and len(instances_b) == NODES_B
    assert not instances_a & instances_b
    records = {i["InstanceId"]: tags(i) for i in aws.instances()}
    assert {records[i][TAG] for i in instances_a} == {id_a}
    assert {records[i][TAG] for i in instances_b} == {id_b}

    node = {"nodepool_provider_name": "aws", "nodepool_pool_name": "main",
            "nodepool_node_id": "0000000777"}
    leak_a = aws.run_tagged({**node, TAG: id_a})
    leak_b = aws.run_tagged({**node, TAG: id_b})
    upstream_leak = aws.run_tagged(node)   # upstream Nodepool's: no id

    # B first: its passes reap its own leak and upstream's, nothing of A.
    _passes(launcher_b, 3)
    wait_for(lambda: not {leak_b, upstream_leak} & _alive(aws),
             what="B's and upstream's leaks deleted")
    assert {leak_a} | instances_a | instances_b <= _alive(aws)
    _passes(launcher_a, 3)
    wait_for(lambda: leak_a not in _alive(aws), what="A's leak deleted")
    assert instances_a | instances_b <= _alive(aws)
    for e, nodes in ((env, nodes_a), (env_b, nodes_b)):
        states = {e.zuul.get_node(n)["state"] for n in nodes}
        assert states == {"ready"}


def test_crash_recovery_deletes_only_our_installations_instance(
        env, env_b, aws):
    # B finds a node of its own left ``building`` by a crashed launch,
    # with a create intent and no instance id; A has a live instance
    # tagged with the same node id.  B deletes its own orphan only.
    env.write_config([_provider(aws)])
    env_b.write_config([_provider(aws)])
    env.start_launcher()
    (node_id, theirs), = _ready_nodes(env, _launch(env, 1)).items()
    id_b = installation_id(env_b.client)   # what B's launcher will read
    mine = aws.run_tagged({"nodepool_provider_name": "aws",
                           "nodepool_pool_name": "main",
                           "nodepool_node_id": node_id, TAG: id_b})
    now = time.time()
    env_b.client.create(f"/nodepool/nodes/{node_id}", json.dumps({
        "state": "building", "state_time": now, "created_time": now,
        "provider": "aws", "pool": "main", "type": ["small"],
        "allocated_to": None, "launcher": "killed-launcher",
        "external_id": None,
        "driver_data": {"create": {"attempt": 1, "token": "t",
                                   "started": now}}}).encode(),
        makepath=True)
    env_b.start_launcher()
    env_b.zuul.wait_node_gone(node_id, timeout=30)
    wait_for(lambda: mine not in _alive(aws), timeout=20,
             what="B's orphaned instance deleted")
    assert theirs in _alive(aws)
    assert env.zuul.get_node(node_id)["state"] == "ready"


def test_create_tokens_name_each_installations_own_instance(env, env_b, aws):
    # Unbatched creates send the attempt's ClientToken; EC2 answers a token
    # it has seen with the instance it made for it.  Node 0000000000 of B
    # must get its own instance, not A's node 0000000000's.
    unbatched = {"batch-creates": False}
    env.write_config([_provider(aws, **unbatched)])
    env_b.write_config([_provider(aws, **unbatched)])
    env.start_launcher()
    nodes_a = _ready_nodes(env, _launch(env, 3))
    env_b.start_launcher()
    nodes_b = _ready_nodes(env_b, _launch(env_b, 3))
    assert set(nodes_a) == set(nodes_b)
    assert not set(nodes_a.values()) & set(nodes_b.values())
    assert len(_alive(aws)) == 6
