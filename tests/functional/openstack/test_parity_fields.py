"""Node fields of OpenStack nodes: ours against upstream Nodepool 11's.

Each test launches a node through our launcher against the local
OpenStack, reads the node znode's raw JSON, reads the server (and the
cloud's networks and flavors) back through the API, and computes what
upstream's launcher would have written for that same server -- with
upstream's mapping rules written out below (openstacksdk's
``add_server_interfaces`` for the addresses, upstream's
``OpenStackInstance`` and launcher for the rest), not from our output.
Then the two records are compared field by field, and so are the Zuul 14.3
inventory entries built from them.

Fields the launcher core writes on its own (``hostname``, ``driver_data``,
the default ``username``, ``interface_ip`` when the driver has none) are
checked by the tests at the end.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import psutil
import pytest
import yaml

from nodepool.zk.installation import installation_id
from tests.functional.launcher.helpers import LauncherEnv
from tests.functional.openstack.helpers import connect, label, provider
from tests.functional.zuulview import host_entry
from tools.fakeopenstack import LocalOpenStack

ZONES = ["zone-a", "zone-b"]
IPV6_CIDR = "2001:db8:10::/64"

#: every node key compared with upstream's value
FIELDS = ("external_id", "cloud", "region", "az", "host_id", "interface_ip",
          "public_ipv4", "private_ipv4", "public_ipv6", "image_id",
          "resources", "attributes", "node_properties", "username",
          "python_path", "shell_type", "connection_type", "connection_port",
          "ssh_port", "host_keys", "slot", "provider", "pool", "type")


# -- fixtures: a per-test cloud and clouds.yaml a test may shape --------------
# A test changes them with ``@pytest.mark.parametrize("cloud_args", [...])``
# (LocalOpenStack arguments) or ``("clouds_entry", [...])`` (extra keys of
# the ``fake`` clouds.yaml entry).
@pytest.fixture
def cloud_args() -> dict:
    return {}


@pytest.fixture
def clouds_entry() -> dict:
    return {}


@pytest.fixture
def cloud(cloud_args):
    fake = LocalOpenStack(availability_zones=ZONES, **cloud_args).start()
    yield fake
    fake.stop()


@pytest.fixture
def clouds_yaml(cloud, clouds_entry, tmp_path, monkeypatch) -> str:
    config = cloud.clouds_config("fake")
    config["clouds"]["fake"].update(clouds_entry)
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    for key in ("OS_CLOUD", "OS_AUTH_URL", "OS_REGION_NAME"):
        monkeypatch.delenv(key, raising=False)
    return str(path)


@pytest.fixture
def env(zk, tmp_path, clouds_yaml):
    with LauncherEnv(zk, tmp_path) as e:
        e.clouds_path = clouds_yaml
        yield e


# -- upstream's rules, written out --------------------------------------------
def localhost_has_ipv6() -> bool:
    """openstacksdk's ``localhost_supports_ipv6``: some interface has an
    IPv6 address that is neither loopback nor link-local."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET6:
                ip = ipaddress.ip_address(a.address.split("%")[0])
                if not ip.is_link_local and not ip.is_loopback:
                    return True
    return False


def _interfaces(addresses, version=4, tag=None, net=None, mac=None):
    out = []
    for name, entries in addresses.items():
        if net is not None and name != net:
            continue
        for e in entries:
            if tag is not None and e.get("OS-EXT-IPS:type") != tag:
                continue
            if mac is not None and e.get("OS-EXT-IPS-MAC:mac_addr") != mac:
                continue
            if e["version"] == version:
                out.append(e)
    return out


def _first(addresses, **kw) -> str | None:
    """``get_server_ip``: floating addresses first, then fixed; the first
    one (upstream probes port 22 when several remain: none answers here)."""
    found = _interfaces(addresses, **kw)
    ordered = [e["addr"] for e in found
               if e.get("OS-EXT-IPS:type") == "floating"] + \
              [e["addr"] for e in found
               if e.get("OS-EXT-IPS:type") != "floating"]
    return ordered[0] if ordered else None


def upstream_addresses(server: dict, networks: list, clouds: dict,
                       local_ipv6: bool) -> dict:
    """openstacksdk's add_server_interfaces with Neutron present, then
    upstream's OpenStackInstance (private_ipv4 falls back to public)."""
    addresses = server["addresses"]
    hints = clouds.get("networks", [])
    ext_names = {n["name"] for n in hints
                 if n.get("routes_ipv4_externally",
                          n.get("routes_externally", False))}
    int_names = {n["name"] for n in hints} - ext_names
    ext_nets, int_nets = [], []
    for n in networks:
        keys = {n.name, n.id}
        routed = n.is_router_external or n.provider_physical_network
        if keys & ext_names or (routed and not keys & int_names):
            ext_nets.append(n.name)
        if keys & int_names or (not routed and not keys & ext_names):
            int_nets.append(n.name)
    private = clouds.get("private", False)
    force_ipv4 = clouds.get("force_ipv4", False)

    public_v4 = ""
    if clouds.get("use_external_network", True):
        public_v4 = server["accessIPv4"] or next(
            (ip for ip in (_first(addresses, net=n) for n in ext_nets) if ip),
            None) or _first(addresses, tag="floating") or \
            _first(addresses, net="public")
        if not public_v4:
            for entries in addresses.values():
                for e in entries:
                    ip = ipaddress.ip_address(e["addr"])
                    if ip.version == 4 and not ip.is_private:
                        public_v4 = public_v4 or e["addr"]
        public_v4 = public_v4 or ""

    public_v6 = ""
    if not force_ipv4:
        public_v6 = server["accessIPv6"] or \
            _first(addresses, version=6) or ""

    private_v4 = ""
    if clouds.get("use_internal_network", True):
        fips = _interfaces(addresses, tag="floating")
        mac = fips[0].get("OS-EXT-IPS-MAC:mac_addr") if fips else None
        private_v4 = next((ip for ip in (
            [_first(addresses, net=n, tag="fixed", mac=mac)
             for n in int_nets] +
            [_first(addresses, net=n, mac=mac) for n in int_nets] +
            [_first(addresses, net="private", tag="fixed", mac=mac),
             _first(addresses, net="private")]) if ip), "")

    v6_first = local_ipv6 and not force_ipv4
    default = next((n["name"] for n in hints
                    if n.get("default_interface")), None)
    interface = None
    if default:
        for version in ([6, 4] if v6_first else [4]):
            interface = interface or _first(addresses, net=default,
                                            version=version)
    if not interface:
        if private and private_v4:
            interface = private_v4
        elif public_v6 and v6_first:
            interface = public_v6
        else:
            interface = public_v4
    return {"public_ipv4": public_v4, "public_ipv6": public_v6,
            "private_ipv4": private_v4 or public_v4,
            "interface_ip": interface or ""}


def upstream_node(env, cloud_name: str, node: dict) -> dict:
    """What upstream's launcher writes for the server behind ``node``,
    from our config file and the cloud's own description of the server."""
    config = yaml.safe_load(open(env.config_path))
    prov = next(p for p in config["providers"] if p["name"] == node[
        "provider"])
    pool = next(p for p in prov["pools"] if p["name"] == node["pool"])
    lbl = next(x for x in pool["labels"] if x["name"] == node["type"][0])
    image = next(i for i in prov["cloud-images"]
                 if i["name"] == lbl["cloud-image"])
    clouds = yaml.safe_load(open(env.clouds_path))["clouds"][cloud_name]

    conn = connect(env.clouds_path, cloud_name)
    server = conn.compute.get(
        f"/servers/{node['external_id']}").json()["server"]
    networks = list(conn.network.networks())
    flavors = sorted(conn.compute.flavors(),
                     key=lambda f: (f.ram, f.name))
    if lbl.get("min-ram"):
        flavor = next(f for f in flavors if f.ram >= lbl["min-ram"] and (
            not lbl.get("flavor-name") or lbl["flavor-name"] in f.name))
    else:
        flavor = next(f for f in flavors
                      if lbl["flavor-name"] in (f.name, f.id))
    conn.close()
    resources = {"cores": flavor.vcpus, "instances": 1, "ram": flavor.ram}
    if lbl.get("boot-from-volume"):
        resources.update({"volumes": 1,
                          "volume-gb": lbl.get("volume-size", 50)})
    connection_type = image.get("connection-type", "ssh")
    port = image.get("connection-port",
                     {"ssh": 22, "winrm": 5986}.get(connection_type, 22))
    expected = {
        "external_id": server["id"],
        "cloud": prov["cloud"],
        "region": prov.get("region-name"),
        "az": server.get("OS-EXT-AZ:availability_zone"),
        "host_id": server["hostId"],
        "image_id": image["name"],
        "resources": resources,
        "attributes": pool.get("node-attributes"),
        "node_properties": {},
        "username": image.get("username"),
        "python_path": image.get("python-path", "auto"),
        "shell_type": image.get("shell-type"),
        "connection_type": connection_type,
        "connection_port": port, "ssh_port": port,
        "host_keys": [],
        "slot": None,
        "provider": prov["name"], "pool": pool["name"],
        "type": [lbl["name"]],
        # core-written fields (see the tests at the end)
        "hostname": None, "driver_data": None,
    }
    expected.update(upstream_addresses(server, networks, clouds,
                                       localhost_has_ipv6()))
    if pool.get("use-internal-ip") and expected["private_ipv4"]:
        expected["interface_ip"] = expected["private_ipv4"]
    return expected


# -- helpers ------------------------------------------------------------------
def launch(env, n: int = 1) -> list[tuple[str, dict]]:
    """Start the launcher, have ``n`` nodes made; (id, raw JSON) of each."""
    env.start_launcher()
    rid = env.zuul.submit(["small"] * n)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    out = []
    for node_id in req["nodes"]:
        data, _ = env.client.get(f"/nodepool/nodes/{node_id}")
        out.append((node_id, json.loads(data)))
    return out


def assert_parity(env, record: dict) -> dict:
    expected = upstream_node(env, "fake", record)
    ours = {k: record.get(k) for k in FIELDS}
    want = {k: expected[k] for k in FIELDS}
    diff = {k: (ours[k], want[k]) for k in FIELDS if ours[k] != want[k]}
    assert diff == {}, f"fields differing (ours, upstream's): {diff}"
    # What a job sees: Zuul's inventory entry of our record, and of the
    # record upstream would have written (built from ``expected`` alone).
    assert host_entry(record) == host_entry(expected)
    return expected


NODE_ATTRS = {"team": "ci"}


def config(env, pool_extra=None, label_extra=None, drop_region=False,
           **extra):
    prov = provider(labels=[label(**(label_extra or {}))],
                    pool_extra={"node-attributes": NODE_ATTRS,
                                **(pool_extra or {})}, **extra)
    if drop_region:
        del prov["region-name"]
    env.write_config([prov])


# -- the cases ----------------------------------------------------------------
@pytest.mark.parametrize("clouds_entry", [{"private": True}])
def test_private_network_only(env, cloud):
    """(a) Only the private network, ``private: true`` (how a cloud without
    public addresses is configured for upstream): no floating IP even with
    auto-floating-ip, and the private address is the interface."""
    config(env, pool_extra={"auto-floating-ip": True},
           label_extra={"networks": ["private"]})
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    assert cloud.floating_ips() == []
    assert expected["interface_ip"].startswith("10.0.")
    assert expected["public_ipv4"] == expected["public_ipv6"] == ""


def test_floating_ip(env, cloud):
    """(b) A private server given a floating IP by auto-floating-ip."""
    config(env, pool_extra={"auto-floating-ip": True},
           label_extra={"networks": ["private"]})
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    fip, = cloud.floating_ips()
    assert expected["public_ipv4"] == fip["floating_ip_address"]
    assert expected["private_ipv4"].startswith("10.0.")


def test_on_external_network_private_falls_back_to_public(env, cloud):
    """(b') A server booted straight onto the external network: its only
    address is public, and upstream writes it as private_ipv4 too; no
    ``region-name`` in the provider: upstream writes no region."""
    config(env, pool_extra={"auto-floating-ip": True},
           label_extra={"networks": ["public"]}, drop_region=True)
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    assert cloud.floating_ips() == []
    assert expected["private_ipv4"] == expected["public_ipv4"] != ""
    assert expected["region"] is None


@pytest.mark.parametrize("cloud_args", [{"private_ipv6": IPV6_CIDR}])
def test_dual_stack_with_floating_ip(env, cloud):
    """(c) A dual-stack server: upstream still gives it a floating IP (its
    IPv4 is private), and the interface is the IPv6 address when this host
    has IPv6 itself (openstacksdk's rule), else the floating IP."""
    config(env, pool_extra={"auto-floating-ip": True})
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    assert ipaddress.ip_address(expected["public_ipv6"]) in \
        ipaddress.ip_network(IPV6_CIDR)
    fip, = cloud.floating_ips()
    assert expected["public_ipv4"] == fip["floating_ip_address"]


@pytest.mark.parametrize("cloud_args", [{"private_ipv6": IPV6_CIDR}])
def test_dual_stack_without_floating_ip(env, cloud):
    """(c') Dual-stack, no floating IP: IPv6 is the only public address."""
    config(env, pool_extra={"auto-floating-ip": False})
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    assert expected["public_ipv4"] == ""
    assert expected["public_ipv6"] != ""


@pytest.mark.parametrize("cloud_args", [{"private_ipv6": IPV6_CIDR}])
@pytest.mark.parametrize("clouds_entry", [{"force_ipv4": True}])
def test_dual_stack_force_ipv4(env, cloud):
    """(c'') ``force_ipv4`` in clouds.yaml: no IPv6 reported at all."""
    config(env, pool_extra={"auto-floating-ip": True})
    (node_id, record), = launch(env)
    expected = assert_parity(env, record)
    assert expected["public_ipv6"] == ""
    assert expected["interface_ip"] == expected["public_ipv4"] != ""


def test_server_metadata_matches_upstream(env, cloud):
    """The metadata upstream's leak rule reads, and upstream's ``groups``
    and instance properties, on the server as the cloud stores it."""
    config(env, label_extra={"instance-properties": {"prio": "3"}})
    (node_id, record), = launch(env)
    conn = connect(env.clouds_path)
    server = conn.compute.get(
        f"/servers/{record['external_id']}").json()["server"]
    conn.close()
    # Ours add the installation's id (upstream's rule ignores it).
    assert server["metadata"] == {
        "groups": "os,jammy,small", "prio": "3",
        "nodepool_node_id": node_id,
        "nodepool_pool_name": "main", "nodepool_provider_name": "os",
        "nodepool_installation": installation_id(env.client)}
    assert server["name"] == f"np{node_id}"


# -- what the launcher core writes (it follows upstream there too) -----------
@pytest.mark.parametrize("key", ["hostname", "driver_data"])
def test_core_fields(env, cloud, key):
    config(env)
    (node_id, record), = launch(env)
    assert record[key] == upstream_node(env, "fake", record)[key]


def test_core_default_username(env, cloud):
    """A cloud-image without ``username``: upstream writes null."""
    env.write_config([provider(**{"cloud-images": [
        {"name": "jammy", "image-name": "ubuntu-jammy"}]})])
    (node_id, record), = launch(env)
    assert record["username"] == upstream_node(env, "fake", record)[
        "username"]


def test_core_interface_ip_of_private_only_server(env, cloud):
    """Private-only server, default clouds.yaml: upstream's interface_ip is
    "" (openstacksdk finds no public address); the core falls back to the
    private address."""
    config(env, label_extra={"networks": ["private"]})
    (node_id, record), = launch(env)
    assert record["interface_ip"] == upstream_node(env, "fake", record)[
        "interface_ip"]
