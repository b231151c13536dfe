"""Launch and delete through the launcher against the local OpenStack.

Real ZooKeeper, the real openstacksdk over HTTP, the launcher in-process:
the test plays Zuul and reads the cloud's own records.
"""

from __future__ import annotations

import base64
import time

from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import (
    adapter_of, label, post_count, provider, servers_by_node)


def _fulfil(env, labels, **kw) -> tuple[str, list[str]]:
    rid = env.zuul.submit(labels, **kw)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    return rid, req["nodes"]


def _release(env, cloud, nodes) -> None:
    env.zuul.release(nodes)
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id, timeout=20)
    wait_for(lambda: not cloud.servers(), what="servers deleted")


def test_launch_and_delete_with_floating_ip(env, cloud):
    env.write_config([provider(pool_extra={"auto-floating-ip": True})])
    env.start_launcher()
    rid, nodes = _fulfil(env, ["small"], tenant="tenant-a")
    node = env.zuul.get_node(nodes[0])
    fips = cloud.floating_ips()
    assert len(fips) == 1 and fips[0]["port_id"]
    assert node["public_ipv4"] == fips[0]["floating_ip_address"]
    assert node["interface_ip"] == node["public_ipv4"]
    assert node["private_ipv4"].startswith("10.0.")
    server = servers_by_node(cloud)[nodes[0]]
    assert node["external_id"] == server["id"]
    assert server["name"] == f"np{nodes[0]}"
    assert node["hostname"] is None      # as upstream
    assert server["metadata"]["nodepool_provider_name"] == "os"
    assert server["metadata"]["nodepool_pool_name"] == "main"
    assert node["provider"] == "os" and node["cloud"] == "fake"
    assert node["region"] == "RegionOne"
    assert node["az"] == server["OS-EXT-AZ:availability_zone"]
    assert node["resources"] == {"instances": 1, "cores": 1, "ram": 2048}
    assert node["username"] == "zuul" and node["host_keys"] == []
    _release(env, cloud, nodes)
    assert cloud.floating_ips() == []          # released with the server
    assert [p for p in cloud.ports()
            if p["device_owner"].startswith("compute:")] == []


def test_server_carries_every_label_setting(env, cloud):
    lbl = label(**{"key-name": "zuul-key", "userdata": "#!/bin/sh\necho hi",
                   "instance-properties": {"team": "ci", "prio": 3},
                   "dynamic-instance-properties": {
                       "tenant": "{request.tenant_name}",
                       "broken": "{request.nope}"},
                   "networks": ["private"]})
    env.write_config([provider(
        labels=[lbl], pool_extra={"security-groups": ["default"]},
        **{"cloud-images": [{"name": "jammy", "image-name": "ubuntu-jammy",
                             "username": "zuul", "config-drive": True}]})])
    env.start_launcher()
    _, nodes = _fulfil(env, ["small"], tenant="tenant-b")
    server = servers_by_node(cloud)[nodes[0]]
    meta = server["metadata"]
    assert meta["team"] == "ci" and meta["prio"] == "3"
    assert meta["tenant"] == "tenant-b"
    assert "broken" not in meta                # unrenderable: left out
    assert meta["groups"] == "os,jammy,small"
    assert server["key_name"] == "zuul-key"
    assert server["config_drive"] == "True"
    record = cloud.state.servers[server["id"]]
    assert base64.b64decode(record.user_data) == b"#!/bin/sh\necho hi"
    assert list(server["addresses"]) == ["private"]


def test_flavor_by_min_ram_picks_smallest_fitting(env, cloud):
    env.write_config([provider(labels=[
        {"name": "big", "cloud-image": "jammy", "min-ram": 3000}])])
    env.start_launcher()
    _, nodes = _fulfil(env, ["big"])
    server = servers_by_node(cloud)[nodes[0]]
    assert server["flavor"]["original_name"] == "m1.medium"   # 4096 MiB
    assert env.zuul.get_node(nodes[0])["resources"] == {
        "instances": 1, "cores": 2, "ram": 4096}


def test_boot_from_volume(env, cloud):
    env.write_config([provider(labels=[label(**{
        "boot-from-volume": True, "volume-size": 12})])])
    env.start_launcher()
    _, nodes = _fulfil(env, ["small"])
    server = servers_by_node(cloud)[nodes[0]]
    assert server["image"] == ""               # booted from the volume
    volumes = cloud.volumes()
    assert [v["size"] for v in volumes] == [12]
    assert volumes[0]["attachments"][0]["server_id"] == server["id"]
    assert env.zuul.get_node(nodes[0])["resources"] == {
        "instances": 1, "cores": 1, "ram": 2048, "volumes": 1,
        "volume-gb": 12}
    _release(env, cloud, nodes)
    assert cloud.volumes() == []               # deleted with the server


def test_nodeset_stays_in_one_zone(env, cloud):
    env.write_config([provider()])
    env.start_launcher()
    for _ in range(3):
        _, nodes = _fulfil(env, ["small"] * 3)
        zones = {env.zuul.get_node(n)["az"] for n in nodes}
        assert len(zones) == 1, zones
    # Without our choice the local cloud alternates zones per server.
    assert {s["OS-EXT-AZ:availability_zone"] for s in cloud.servers()} <= {
        "zone-a", "zone-b"}


def test_pool_availability_zones_are_used(env, cloud):
    env.write_config([provider(pool_extra={
        "availability-zones": ["zone-b"]})])
    env.start_launcher()
    _, nodes = _fulfil(env, ["small", "small"])
    assert {env.zuul.get_node(n)["az"] for n in nodes} == {"zone-b"}
    assert {s["OS-EXT-AZ:availability_zone"]
            for s in cloud.servers()} == {"zone-b"}


def test_list_instances_reports_foreign_servers(env, cloud):
    env.write_config([provider()])
    launcher = env.start_launcher()
    _fulfil(env, ["small"])
    adapter = adapter_of(launcher)
    instances = list(adapter.list_instances())
    assert len(instances) == 1
    assert instances[0].provider_name == "os"
    assert instances[0].resources["cores"] == 1


def test_rate_is_seconds_between_calls(env, cloud):
    """rate 0.3: creates start at least 0.3 s apart (not 0.3 per second)."""
    env.write_config([provider(rate=0.3, labels=[label()])])
    launcher = env.start_launcher()
    assert adapter_of(launcher).limiter.rate == 1 / 0.3
    times = []

    def arrivals():
        count = post_count(cloud)
        while len(times) < count:
            times.append(time.monotonic())
        return count >= 4

    for _ in range(4):
        env.zuul.submit(["small"])
    wait_for(arrivals, timeout=15, interval=0.005, what="4 creates")
    spread = times[-1] - times[0]
    assert 3 * 0.3 - 0.05 <= spread < 2.5, times
