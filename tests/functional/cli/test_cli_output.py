"""Golden text and JSON output of the commands on seeded ZooKeeper data
(cli.md §1.1, §1.2, §3); the clock is frozen at ``NOW`` so ages are exact.
Golden files live in ``golden/``."""

import json
import os

from nodepool.zk import Node, NodeRequest, NodeState
from nodepool.zk.image import upload_path

NOW = 1_700_000_000.0
DAY = 86400
GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def golden(name: str) -> str:
    with open(os.path.join(GOLDEN, name)) as handle:
        return handle.read()


def seed_nodes(seed):
    nodes = [
        Node(state=NodeState.READY, state_time=NOW - (DAY + 7384),
             provider="static-lab", pool="main", type=["small"],
             external_id="host1.example.com", public_ipv4="203.0.113.5",
             hostname="host1.example.com", launcher="static driver",
             private_ipv4="10.0.0.5", slot=0),
        Node(state=NodeState.IN_USE, state_time=NOW - 59,
             provider="aws-east", pool="gpu", type=["large", "gpu"],
             external_id={"host": "h-1", "instance": "i-1"},
             public_ipv6="2001:db8::7", hostname="np0000000001",
             az="us-east-1a", connection_port="token-abc",
             launcher="h-PoolWorker.aws-east-gpu-1",
             allocated_to="200-0000000003", user_data={"k": "v"},
             driver_data=["a", "b"], comment="x"),
        Node(state=NodeState.HOLD, state_time=NOW - 100 * DAY,
             provider="static-lab", pool="main", type=["small"],
             hold_job="tenant/project/job", comment="debugging",
             username="ci", connection_port=2022),
    ]
    for node in nodes:
        seed.store_node(node)
    return nodes


def seed_requests(seed):
    first = NodeRequest(state="requested", state_time=NOW,
                        node_types=["small", "small"], requestor="zuul-1",
                        relative_priority=2, event_id="e-1")
    second = NodeRequest(state="pending", state_time=NOW,
                         node_types=["large"], nodes=["0000000001"],
                         declined_by=["w1", "w2"], requestor="zuul-2")
    seed.submit_request(first, priority="200")
    seed.submit_request(second, priority="100")


def seed_uploads(zk):
    kazoo = zk.kazoo()
    records = [("ubuntu", "b2", "static-lab", "ready", NOW - 3600, "ami-2"),
               ("ubuntu", "b1", "static-lab", "ready", NOW - 2 * DAY,
                "ami-1"),
               ("ubuntu", "b1", "aws-east", "uploading", NOW - 10, None),
               ("debian", "b7", "static-lab", "failed", NOW - 5, None)]
    for image, build, provider, state, when, external in records:
        body = {"state": state, "state_time": when,
                "external_id": external,
                "external_name": f"{image}-{build}", "format": "raw"}
        kazoo.create(upload_path(image, build, provider) + "/",
                     json.dumps(body).encode(), sequence=True,
                     makepath=True)
    kazoo.stop()


def test_list(cli, seed):
    nodes = seed_nodes(seed)
    seed.lock_node(nodes[1])
    result = cli("list")
    assert (result.rc, result.err) == (0, "")
    assert result.out == golden("list.txt")


def test_list_detail(cli, seed):
    nodes = seed_nodes(seed)
    seed.lock_node(nodes[1])
    result = cli("list", "--detail")
    assert result.rc == 0
    assert result.out == golden("list-detail.txt")


def test_list_json(cli, seed):
    nodes = seed_nodes(seed)
    seed.lock_node(nodes[1])
    result = cli("list", "--detail", "--json")
    rows = json.loads(result.out)
    assert [r["id"] for r in rows] == ["0000000000", "0000000001",
                                       "0000000002"]
    assert rows[1] == {
        "id": "0000000001", "provider": "aws-east",
        "label": ["large", "gpu"],
        "server_id": {"host": "h-1", "instance": "i-1"},
        "public_ipv4": None, "ipv6": "2001:db8::7", "state": "in-use",
        "age": "00:00:00:59", "locked": "locked", "pool": "gpu",
        "hostname": "np0000000001", "private_ipv4": None,
        "AZ": "us-east-1a", "username": "zuul",
        "connection_port": "redacted",
        "launcher": "h-PoolWorker.aws-east-gpu-1",
        "allocated_to": "200-0000000003", "hold_job": None,
        "comment": "x", "user_data": {"k": "v"},
        "driver_data": ["a", "b"]}
    brief = json.loads(cli("list", "--json").out)
    assert list(brief[0]) == ["id", "provider", "label", "server_id",
                              "public_ipv4", "ipv6", "state", "age",
                              "locked"]


def test_empty_list(cli):
    result = cli("list")
    assert result.out == golden("list-empty.txt")


def test_request_list(cli, seed):
    seed_requests(seed)
    result = cli("request-list")
    assert result.rc == 0
    assert result.out == golden("request-list.txt")
    rows = json.loads(cli("request-list", "--json").out)
    assert rows[0] == {"id": "100-0000000001", "relative_priority": 0,
                       "state": "pending", "requestor": "zuul-2",
                       "node_types": ["large"], "nodes": ["0000000001"],
                       "declined_by": ["w1", "w2"], "event_id": None}
    assert rows[1]["id"] == "200-0000000000"


def test_image_list(cli, zk):
    seed_uploads(zk)
    result = cli("image-list")
    assert result.rc == 0
    assert result.out == golden("image-list.txt")


def test_info(cli, seed, zk):
    seed_uploads(zk)
    seed_nodes(seed)
    result = cli("info", "static-lab")
    assert result.rc == 0
    assert result.out == golden("info.txt")


def test_hold(cli, seed):
    nodes = seed_nodes(seed)
    result = cli("hold", nodes[0].id, "--reason", "debug it")
    assert (result.rc, result.err) == (0, "")
    assert result.out == golden("hold.txt")
    held = seed.get_node(nodes[0].id)
    assert held.state == NodeState.HOLD and held.state_time == NOW
    assert held.comment == "debug it"
    assert not seed.is_locked(held, cached=False)


def test_delete(cli, seed, zk):
    nodes = seed_nodes(seed)
    # A key only Zuul knows must survive the CLI's rewrite.
    kazoo = zk.kazoo()
    path = f"/nodepool/nodes/{nodes[2].id}"
    data = json.loads(kazoo.get(path)[0])
    data["span_info"] = {"trace": "t"}
    kazoo.set(path, json.dumps(data).encode())
    result = cli("delete", nodes[2].id)
    assert (result.rc, result.err) == (0, "")
    assert result.out == golden("delete.txt")
    final = json.loads(kazoo.get(path)[0])
    kazoo.stop()
    assert final["state"] == "deleting" and final["state_time"] == NOW
    assert final["span_info"] == {"trace": "t"}
    assert final["hold_job"] == "tenant/project/job"
