"""Leak cleanup (behaviours 33-35): servers, DOWN ports, floating IPs.

Leaks are planted with the test's own SDK connection; the launcher's
cleanup worker is run pass by pass (``run_once``), and a leak must survive
the first pass that sees it and be gone after the second.
"""

from __future__ import annotations

from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import connect, provider


def _boot(conn, name: str, metadata: dict) -> str:
    image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    net = conn.network.find_network("private", ignore_missing=False)
    server = conn.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id,
        networks=[{"uuid": net.id}], metadata=metadata)
    return server.id


def _server_ids(cloud) -> set[str]:
    return {s["id"] for s in cloud.servers()}


def test_leaked_server_deleted_on_second_pass_only(env, cloud, clouds_yaml):
    env.write_config([provider()])
    launcher = env.start_launcher()
    conn = connect(clouds_yaml)
    leaked = _boot(conn, "leak", {"nodepool_provider_name": "os",
                                  "nodepool_node_id": "0000099999",
                                  "nodepool_pool_name": "main"})
    foreign = _boot(conn, "other", {"nodepool_provider_name": "elsewhere",
                                    "nodepool_node_id": "0000099998"})
    untagged = _boot(conn, "pet", {})
    cleanup = launcher.cleanup_worker
    cleanup.run_once()
    assert _server_ids(cloud) == {leaked, foreign, untagged}
    cleanup.run_once()
    wait_for(lambda: leaked not in _server_ids(cloud),
             what="leaked server deleted")
    assert _server_ids(cloud) == {foreign, untagged}
    conn.close()


def test_down_ports_and_floating_ips_cleaned(env, cloud, clouds_yaml):
    env.write_config([provider(**{"port-cleanup-interval": 1,
                                  "clean-floating-ips": True})])
    launcher = env.start_launcher()
    conn = connect(clouds_yaml)
    live = _boot(conn, "pet", {})
    leaked_port = cloud.add_port(status="DOWN", device_owner="compute:nova",
                                 device_id="gone-server")
    live_port = cloud.add_port(status="DOWN", device_owner="compute:nova",
                               device_id=live)
    dhcp_port = cloud.add_port(status="DOWN", device_owner="network:dhcp")
    public = conn.network.find_network("public", ignore_missing=False)
    loose_ip = conn.network.create_ip(floating_network_id=public.id)
    cleanup = launcher.cleanup_worker
    cleanup.run_once()
    port_ids = {p["id"] for p in cloud.ports()}
    assert {leaked_port["id"], live_port["id"], dhcp_port["id"]} <= port_ids
    assert [f["id"] for f in cloud.floating_ips()] == [loose_ip.id]
    cleanup.run_once()
    port_ids = {p["id"] for p in cloud.ports()}
    assert leaked_port["id"] not in port_ids
    assert {live_port["id"], dhcp_port["id"]} <= port_ids
    assert cloud.floating_ips() == []
    conn.close()


def test_port_and_ip_cleanup_are_off_unless_configured(env, cloud,
                                                      clouds_yaml):
    env.write_config([provider(**{"port-cleanup-interval": 0})])
    launcher = env.start_launcher()
    conn = connect(clouds_yaml)
    port = cloud.add_port(status="DOWN", device_owner="compute:nova")
    public = conn.network.find_network("public", ignore_missing=False)
    conn.network.create_ip(floating_network_id=public.id)
    for _ in range(3):
        launcher.cleanup_worker.run_once()
    assert port["id"] in {p["id"] for p in cloud.ports()}
    assert len(cloud.floating_ips()) == 1
    conn.close()


def test_ports_left_by_deleted_servers_are_cleaned(env, cloud, clouds_yaml):
    """Nova leaking the ports of a server we deleted (a real-world leak)."""
    cloud.configure(leak_ports_on_delete=True)
    env.write_config([provider(**{"port-cleanup-interval": 1})])
    launcher = env.start_launcher()
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    nodes = env.zuul.accept(rid)
    env.zuul.release(nodes)
    env.zuul.wait_node_gone(nodes[0], timeout=20)
    wait_for(lambda: not cloud.servers(), what="server deleted")
    leaked = [p["id"] for p in cloud.ports()
              if p["device_owner"].startswith("compute:")]
    assert len(leaked) == 1
    launcher.cleanup_worker.run_once()
    launcher.cleanup_worker.run_once()
    assert leaked[0] not in {p["id"] for p in cloud.ports()}
