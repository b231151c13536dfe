"""Two installations on one OpenStack project never touch each other's
servers (the AWS test, ``tests/functional/aws/test_installations.py``,
has the burst; this one shows the OpenStack driver carries the id too).

Installations A and B are launchers on two ZooKeeper chroots with the same
provider name ``os`` against the same local OpenStack: both have nodes
``0000000000``.., A more than B.
"""

from __future__ import annotations

from nodepool.zk.installation import installation_id
from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import adapter_of, connect, provider

TAG = "nodepool_installation"


def _ready(env, count: int) -> dict[str, str]:
    """node id -> server id of ``count`` new single-node requests."""
    requests = [env.zuul.submit(["small"]) for _ in range(count)]
    out = {}
    for rid in requests:
        request = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert request["state"] == "fulfilled", request
        (node_id,) = request["nodes"]
        out[node_id] = env.zuul.get_node(node_id)["external_id"]
    return out


def _boot(conn, metadata: dict) -> str:
    image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    net = conn.network.find_network("private", ignore_missing=False)
    return conn.compute.create_server(
        name="leak", image_id=image.id, flavor_id=flavor.id,
        networks=[{"uuid": net.id}], metadata=metadata).id


def _servers(cloud) -> dict[str, dict]:
    return {s["id"]: s["metadata"] for s in cloud.servers()}


def _passes(launcher, planted: set[str]) -> None:
    """Three leak passes once the provider's listing (cached 2 s) shows
    the ``planted`` servers."""
    adapter = adapter_of(launcher)
    wait_for(lambda: planted <= {i.external_id
                                 for i in adapter.list_instances()},
             what="planted servers listed")
    for _ in range(3):
        launcher.cleanup_worker.run_once()


def test_installations_never_delete_each_others_servers(env, env_b, cloud,
                                                        clouds_yaml):
    env.write_config([provider()])
    env_b.write_config([provider()])
    launcher_a, launcher_b = env.start_launcher(), env_b.start_launcher()
    id_a, id_b = installation_id(env.client), installation_id(env_b.client)
    nodes_a, nodes_b = _ready(env, 6), _ready(env_b, 3)
    assert set(nodes_b) < set(nodes_a)
    servers = _servers(cloud)
    assert {servers[s][TAG] for s in nodes_a.values()} == {id_a}
    assert {servers[s][TAG] for s in nodes_b.values()} == {id_b}

    conn = connect(clouds_yaml)
    node = {"nodepool_provider_name": "os", "nodepool_pool_name": "main",
            "nodepool_node_id": "0000000777"}
    leak_a = _boot(conn, {**node, TAG: id_a})
    leak_b = _boot(conn, {**node, TAG: id_b})
    upstream_leak = _boot(conn, node)
    conn.close()
    # B first: it reaps its own leak and upstream's, nothing of A.
    _passes(launcher_b, {leak_a, leak_b, upstream_leak})
    wait_for(lambda: not {leak_b, upstream_leak} & set(_servers(cloud)),
             what="B's and upstream's leaks deleted")
    assert {leak_a, *nodes_a.values(), *nodes_b.values()} <= \
        set(_servers(cloud))
    _passes(launcher_a, {leak_a})
    wait_for(lambda: leak_a not in _servers(cloud), what="A's leak deleted")
    assert {*nodes_a.values(), *nodes_b.values()} <= set(_servers(cloud))
