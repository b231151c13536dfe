"""The local OpenStack, driven by the real openstacksdk over real HTTP.

Most tests use an injected clock, so BUILD -> ACTIVE and delete -> gone
happen exactly when the test advances it; one test uses the real clock with
a short build time and the SDK's own ``wait_for_server`` polling.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openstack
import openstack.config
import openstack.connection
import pytest
from openstack import exceptions as sdk_exc

from tools.fakeopenstack import LocalOpenStack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SERVERS = "POST /compute/v2.1/servers"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def connect(cloud: LocalOpenStack, tmp_path, name: str = "fake"
            ) -> openstack.connection.Connection:
    path = cloud.write_clouds_yaml(tmp_path / "clouds.yaml", cloud_name=name)
    config = openstack.config.OpenStackConfig(config_files=[path])
    return openstack.connection.Connection(config=config.get_one(cloud=name))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cloud(clock):
    fake = LocalOpenStack(clock=clock, build_time=5.0,
                          availability_zones=["zone-a", "zone-b"]).start()
    yield fake
    fake.stop()


@pytest.fixture
def conn(cloud, tmp_path):
    connection = connect(cloud, tmp_path)
    yield connection
    connection.close()


def boot(conn, name: str = "node", **kw):
    image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.small", ignore_missing=False)
    net = conn.network.find_network("private", ignore_missing=False)
    kw.setdefault("networks", [{"uuid": net.id}])
    return conn.compute.create_server(name=name, image_id=image.id,
                                      flavor_id=flavor.id, **kw)


def test_authenticates_and_catalog_points_here(cloud, conn):
    token = conn.authorize()
    assert token
    for service in ("compute", "image", "network", "block-storage"):
        endpoint = conn.session.get_endpoint(service_type=service,
                                             interface="public")
        assert endpoint.startswith(cloud.base_url), service
    assert conn.session.get_endpoint(service_type="compute").endswith(
        "/compute/v2.1")


def test_connect_through_os_client_config_file(cloud, tmp_path,
                                              monkeypatch):
    path = cloud.write_clouds_yaml(tmp_path / "env-clouds.yaml",
                                   cloud_name="envcloud", region="RegionTwo")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", path)
    connection = openstack.connect(cloud="envcloud")
    assert [f.name for f in connection.compute.flavors()][0] == "m1.tiny"
    assert connection.config.get_region_name() == "RegionTwo"
    connection.close()


def test_stop_cuts_off_clients(cloud, conn):
    assert list(conn.compute.flavors())
    cloud.stop()
    with pytest.raises(Exception) as caught:
        list(conn.compute.flavors())
    assert "onnect" in type(caught.value).__name__ + str(caught.value)


def test_wrong_password_is_refused(cloud, tmp_path):
    config = cloud.clouds_config()
    config["clouds"]["fake"]["auth"]["password"] = "wrong"
    region = openstack.config.OpenStackConfig(
        load_yaml_config=False, load_envvars=False).get_one(
        **config["clouds"]["fake"])
    bad = openstack.connection.Connection(config=region)
    with pytest.raises(sdk_exc.SDKException):
        bad.authorize()


def test_lists_flavors_images_networks(conn):
    assert {f.name for f in conn.compute.flavors()} >= {"m1.tiny",
                                                        "m1.small"}
    small = conn.compute.find_flavor("m1.small")
    assert (small.vcpus, small.ram) == (1, 2048)
    assert "ubuntu-jammy" in [i.name for i in conn.image.images()]
    assert [i.name for i in conn.image.images(name="debian-bookworm")] == \
        ["debian-bookworm"]
    assert conn.image.find_image("no-such-image",
                                 ignore_missing=True) is None
    assert [n.name for n in conn.network.networks(name="public")] == \
        ["public"]
    public = conn.network.find_network("public")
    assert public.is_router_external
    assert len(list(conn.network.subnets(network_id=public.id))) == 1
    assert sorted(z.name for z in conn.compute.availability_zones()) == \
        ["zone-a", "zone-b"]


def test_server_builds_then_is_active(cloud, conn, clock):
    server = boot(conn, availability_zone="zone-b", key_name="mykey",
                  metadata={"nodepool_node_id": "0000001"},
                  user_data="IyEvYmluL3NoCg==", config_drive=True)
    assert conn.compute.get_server(server.id).status == "BUILD"
    clock.advance(5.0)
    server = conn.compute.get_server(server.id)
    assert server.status == "ACTIVE"
    assert server.availability_zone == "zone-b"
    assert server.key_name == "mykey"
    assert server.metadata == {"nodepool_node_id": "0000001"}
    assert server.host_id
    assert server.flavor.original_name == "m1.small"
    addr = server.addresses["private"][0]
    assert addr["addr"].startswith("10.0.")
    assert addr["OS-EXT-IPS:type"] == "fixed"
    ports = list(conn.network.ports(device_id=server.id))
    assert [p.status for p in ports] == ["ACTIVE"]
    assert ports[0].device_owner == "compute:zone-b"
    conn.compute.set_server_metadata(server, extra="1")
    assert conn.compute.fetch_server_metadata(server).metadata == {
        "nodepool_node_id": "0000001", "extra": "1"}


def test_wait_for_server_with_real_clock(tmp_path):
    with LocalOpenStack(build_time=0.2, server_ip="127.0.0.1") as fake:
        conn = connect(fake, tmp_path)
        server = conn.compute.wait_for_server(boot(conn), interval=0.05,
                                              wait=10)
        assert server.status == "ACTIVE"
        assert server.access_ipv4 == "127.0.0.1"
        assert server.addresses["private"][0]["addr"] == "127.0.0.1"
        assert conn.get_server(server.id).interface_ip == "127.0.0.1"


def test_multi_create_honours_min_and_max_count(cloud, conn):
    cloud.configure(max_instances=3)
    boot(conn, name="multi", min_count=2, max_count=5)
    names = sorted(s.name for s in conn.compute.servers(name="^multi"))
    assert names == ["multi-1", "multi-2", "multi-3"]
    assert len({s["id"] for s in cloud.servers()}) == 3
    with pytest.raises(sdk_exc.ForbiddenException,
                       match="Quota exceeded for instances"):
        boot(conn, name="more", min_count=1, max_count=2)


def test_return_reservation_id_and_filter(cloud, conn):
    image = conn.image.find_image("cirros-0.6.2-x86_64-disk")
    body = {"server": {"name": "r", "imageRef": image.id, "flavorRef": "1",
                       "networks": "auto", "min_count": 2, "max_count": 2,
                       "return_reservation_id": True}}
    response = conn.compute.post("/servers", json=body, microversion="2.96")
    assert response.status_code == 202
    reservation = response.json()["reservation_id"]
    found = list(conn.compute.servers(reservation_id=reservation))
    assert sorted(s.name for s in found) == ["r-1", "r-2"]
    assert list(conn.compute.servers(reservation_id="r-none")) == []


def test_quota_exceeded_on_create(cloud, conn):
    cloud.configure(max_cores=2)
    boot(conn)
    boot(conn)
    with pytest.raises(sdk_exc.ForbiddenException) as caught:
        boot(conn)
    assert "Quota exceeded for cores" in str(caught.value)
    assert caught.value.status_code == 403
    limits = conn.compute.get_limits().absolute
    assert (limits.total_cores, limits.total_cores_used) == (2, 2)
    assert limits.instances_used == 2
    with pytest.raises(sdk_exc.ForbiddenException, match="Quota exceeded"):
        conn.create_server("cloud-layer", image="ubuntu-jammy",
                           flavor="m1.small", network="private")


def test_scripted_http_and_quota_failures(cloud, conn):
    cloud.fail_next_creates(1, kind="http", status=503)
    cloud.fail_next_creates(1, kind="quota")
    with pytest.raises(sdk_exc.HttpException) as first:
        boot(conn)
    assert first.value.status_code == 503
    with pytest.raises(sdk_exc.ForbiddenException, match="Quota exceeded"):
        boot(conn)
    assert boot(conn).id
    assert cloud.stats()["calls"][SERVERS] == 3


def test_scripted_error_state_with_fault(cloud, conn, clock):
    cloud.fail_next_creates(1, kind="error", code=403,
                            message="Quota exceeded for instances")
    server = boot(conn)
    clock.advance(5.0)
    with pytest.raises(sdk_exc.ResourceFailure):
        conn.compute.wait_for_server(server, interval=0.01, wait=5)
    server = conn.compute.get_server(server.id)
    assert server.status == "ERROR"
    assert server.fault["code"] == 403
    assert "Quota exceeded" in server.fault["message"]
    assert list(conn.network.ports(device_id=server.id)) == []


def test_console_output(cloud, conn, clock):
    server = boot(conn, name="console-me")
    with pytest.raises(sdk_exc.ConflictException):
        conn.compute.get_server_console_output(server)
    clock.advance(5.0)
    output = conn.compute.get_server_console_output(server)["output"]
    assert "console-me login:" in output
    assert conn.compute.get_server_console_output(
        server, length=1)["output"] == "console-me login: \n"
    assert "console-me" in conn.get_server_console(server.id)


def test_floating_ip_create_attach_list_delete(cloud, conn, clock):
    server = boot(conn)
    clock.advance(5.0)
    public = conn.network.find_network("public")
    port = next(conn.network.ports(device_id=server.id))
    fip = conn.network.create_ip(floating_network_id=public.id)
    assert fip.status == "DOWN" and fip.port_id is None
    fip = conn.network.update_ip(fip, port_id=port.id)
    assert fip.status == "ACTIVE"
    assert fip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
    assert [i.id for i in conn.network.ips(port_id=port.id)] == [fip.id]
    assert [i.id for i in conn.network.ips(
        floating_ip_address=fip.floating_ip_address)] == [fip.id]
    addresses = conn.compute.get_server(server.id).addresses["private"]
    assert {"floating", "fixed"} == {a["OS-EXT-IPS:type"]
                                     for a in addresses}
    assert conn.get_server(server.id).public_v4 == fip.floating_ip_address
    conn.network.delete_ip(fip)
    assert list(conn.network.ips()) == []


def test_cloud_layer_floating_ip_flow_and_leak_cleanup(cloud, conn, clock):
    server = boot(conn)
    clock.advance(5.0)
    server = conn.get_server(server.id)
    fip = conn.create_floating_ip(server=server, wait=True)
    conn._attach_ip_to_server(server=server, floating_ip=fip,
                              skip_attach=True)
    assert conn.get_server(server.id).public_v4 == fip.floating_ip_address
    conn.compute.delete_server(server)
    leaked = list(conn.network.ips())
    assert [(i.port_id, i.status) for i in leaked] == [(None, "DOWN")]
    assert conn.delete_unattached_floating_ips() == 1
    assert list(conn.network.ips()) == []


def test_down_ports_list_and_delete(cloud, conn, clock):
    private = conn.network.find_network("private")
    created = conn.network.create_port(network_id=private.id,
                                       device_owner="compute:nova")
    assert created.status == "DOWN"
    leaked = cloud.add_port(device_owner="compute:nova")
    cloud.configure(leak_ports_on_delete=True)
    server = boot(conn)
    clock.advance(5.0)
    conn.compute.delete_server(server)
    down = {p.id for p in conn.network.ports(status="DOWN",
                                             device_owner="compute:nova")}
    assert {created.id, leaked["id"]} <= down
    assert len(list(conn.network.ports(status="DOWN"))) == 3
    assert [p.status for p in conn.list_ports(filters={"status": "DOWN"})] \
        == ["DOWN"] * 3
    for port in conn.network.ports(status="DOWN"):
        conn.network.delete_port(port)
    assert list(conn.network.ports(status="DOWN")) == []
    with pytest.raises(sdk_exc.NotFoundException):
        conn.network.get_port(created.id)


def test_compute_and_volume_limits_with_boot_from_volume(cloud, conn, clock):
    cloud.configure(max_volumes=1, max_volume_gb=50)
    volume_limits = conn.block_storage.get_limits().absolute
    assert (volume_limits.max_total_volumes,
            volume_limits.total_volumes_used) == (1, 0)
    server = conn.create_server("bfv", image="ubuntu-jammy",
                                flavor="m1.small", network="private",
                                boot_from_volume=True, volume_size=10,
                                terminate_volume=True)
    clock.advance(5.0)
    assert conn.compute.get_server(server.id).status == "ACTIVE"
    cloud_limits = conn.get_volume_limits()
    assert cloud_limits.absolute.total_volumes_used == 1
    assert cloud_limits.absolute.total_gigabytes_used == 10
    assert conn.get_compute_limits().total_cores_used == 1
    over = conn.create_server("bfv2", image="ubuntu-jammy",
                              flavor="m1.small", network="private",
                              boot_from_volume=True, volume_size=10)
    clock.advance(5.0)
    over = conn.compute.get_server(over.id)
    assert over.status == "ERROR"
    assert "VolumeLimitExceeded" in over.fault["message"]
    conn.compute.delete_server(server)
    assert list(conn.block_storage.volumes()) == []


def test_delete_then_gone(cloud, conn, clock):
    cloud.configure(delete_time=2.0)
    server = boot(conn)
    clock.advance(5.0)
    conn.compute.delete_server(server)
    deleting = conn.compute.get_server(server.id)
    assert deleting.task_state == "deleting"
    clock.advance(2.0)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.get_server(server.id)
    assert list(conn.compute.servers()) == []
    conn.compute.wait_for_delete(server, interval=0.01, wait=5)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.delete_server(server, ignore_missing=False)
    assert conn.compute.get_limits().absolute.instances_used == 0


def test_list_filters_and_pagination(cloud, conn):
    for i in range(5):
        boot(conn, name=f"page-{i}")
    boot(conn, name="other")
    names = [s.name for s in conn.compute.servers(name="^page-", limit=2)]
    assert sorted(names) == [f"page-{i}" for i in range(5)]
    assert cloud.stats()["calls"]["GET /compute/v2.1/servers/detail"] >= 3
    assert [s.name for s in conn.compute.servers(all_projects=True,
                                                 status="BUILD")
            if s.name == "other"] == ["other"]


def test_bad_requests(cloud, conn):
    with pytest.raises(sdk_exc.BadRequestException, match="zone"):
        boot(conn, availability_zone="nowhere")
    with pytest.raises(sdk_exc.BadRequestException, match="Flavor"):
        conn.compute.create_server(name="x", image_id="x", flavor_id="99",
                                   networks="auto")
    with pytest.raises(sdk_exc.BadRequestException, match="networks"):
        conn.compute.create_server(
            name="x", flavor_id="1",
            image_id=conn.image.find_image("ubuntu-jammy").id)
    assert cloud.servers() == []


def test_keypairs_and_key_name_check(cloud, conn):
    cloud.configure(require_keypair=True)
    generated = conn.compute.create_keypair(name="gen")
    assert generated.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY")
    imported = conn.compute.create_keypair(name="imp",
                                           public_key=generated.public_key)
    assert imported.fingerprint == generated.fingerprint
    assert sorted(k.name for k in conn.compute.keypairs()) == ["gen", "imp"]
    with pytest.raises(sdk_exc.BadRequestException, match="key_name"):
        boot(conn, key_name="missing")
    assert boot(conn, key_name="imp").id
    conn.compute.delete_keypair("gen", ignore_missing=False)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.get_keypair("gen")


def test_network_quota_and_extensions(cloud, conn):
    quota = conn.network.get_quota(cloud.project_id, details=True)
    assert quota.networks["used"] == 2
    assert conn.get_network_quotas(cloud.project_id).floating_ips == 50
    aliases = {e.alias for e in conn.network.extensions()}
    assert {"external-net", "router", "quotas"} <= aliases


def test_concurrent_creates_overlap(tmp_path):
    with LocalOpenStack(create_latency=0.5) as fake:
        conn = connect(fake, tmp_path)
        image = conn.image.find_image("ubuntu-jammy", ignore_missing=False)

        def create(i: int) -> None:
            conn.compute.create_server(name=f"c{i}", image_id=image.id,
                                       flavor_id="1", networks="auto")
        create(0)                      # discovery and auth done once
        fake.reset_stats()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, range(1, 5)))
        # Serialised creates would never have two calls in flight.
        assert fake.stats()["max_in_flight"][SERVERS] >= 2
        assert fake.stats()["calls"][SERVERS] == 4
        assert len(fake.servers()) == 5


def test_token_revocation_forces_reauthentication(cloud, conn):
    list(conn.compute.flavors())
    cloud.revoke_tokens()
    assert list(conn.compute.flavors())
    assert cloud.stats()["calls"]["POST /identity/v3/auth/tokens"] == 2


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_control_endpoints(cloud, conn, clock):
    base = cloud.base_url + "/_fake"
    status, config = _http(base + "/config", {"build_time": 0.0})
    assert status == 200 and config["build_time"] == 0.0
    assert _http(base + "/config", {"no_such_flag": 1})[0] == 400
    assert _http(base + "/fail", {"count": 1, "kind": "quota"})[0] == 204
    with pytest.raises(sdk_exc.ForbiddenException):
        boot(conn)
    server = boot(conn)
    status, stats = _http(base + "/stats")
    assert stats["calls"][SERVERS] == 2
    assert stats["unhandled"] == {}
    status, body = _http(base + "/servers")
    assert [(s["id"], s["status"]) for s in body["servers"]] == \
        [(server.id, "ACTIVE")]
    assert _http(cloud.base_url + "/compute/v2.1/servers/detail")[0] == 401


def test_command_line_runs_until_sigterm(tmp_path):
    path = tmp_path / "clouds.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.fakeopenstack", "--clouds-yaml",
         str(path), "--cloud-name", "cli", "--server-ip", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("# fake OpenStack at http://127.0.0.1:")
        config = openstack.config.OpenStackConfig(config_files=[str(path)])
        cli = openstack.connection.Connection(
            config=config.get_one(cloud="cli"))
        assert "m1.tiny" in [f.name for f in cli.compute.flavors()]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
