"""The one shared world of the local OpenStack: servers, ports, IPs, volumes.

Ownership: every request thread reads and changes this state only while
holding ``CloudState.lock`` (re-entrant), and never sleeps while holding
it; injected latencies are slept before or after taking the lock so that
concurrent calls really overlap.

Time: nothing runs in the background.  Server transitions (BUILD to
ACTIVE/ERROR, deleting to gone) are applied lazily by :meth:`tick`, which
every request calls first, by comparing the injected ``clock`` with the
deadlines stored on each record.  So a fake that nobody polls costs nothing,
and a test that polls sees the transition as soon as it is due.

Cross-service effects live here because they span services: a server owns
Neutron ports (created DOWN at boot, ACTIVE once the server is, deleted or
leaked with it), floating IPs follow their port, and boot-from-volume
servers own Cinder volumes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable

from tools.fakeopenstack.records import CreateFailure, ServerRecord, Settings

__all__ = ["CloudState", "DEFAULT_FLAVORS", "DEFAULT_IMAGES", "utcnow_iso"]

# (name, vcpus, ram MiB, disk GB): devstack's default flavors.
DEFAULT_FLAVORS = [("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20),
                   ("m1.medium", 2, 4096, 40), ("m1.large", 4, 8192, 80),
                   ("m1.xlarge", 8, 16384, 160)]
DEFAULT_IMAGES = ["cirros-0.6.2-x86_64-disk", "ubuntu-jammy",
                  "debian-bookworm"]

PRIVATE_CIDR = "10.0.0.0/16"
PUBLIC_CIDR = "172.24.0.0/16"


def utcnow_iso(with_micro: bool = False) -> str:
    now = datetime.now(timezone.utc)
    if with_micro:
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


def _mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}"
                                  for _ in range(3))


class _AddressPool:
    """Hands out consecutive host addresses of one subnet."""

    def __init__(self, cidr: str, first_offset: int) -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = first_offset

    def take(self) -> str:
        addr = self._net.network_address + self._next
        self._next += 1
        if addr not in self._net or addr == self._net.broadcast_address:
            raise RuntimeError(f"address pool {self._net} exhausted")
        return str(addr)


class CloudState:
    """All resources of one fake cloud (one project)."""

    def __init__(self, settings: Settings,
                 clock: Callable[[], float] = time.monotonic,
                 flavors: list[tuple[str, int, int, int]] | None = None,
                 images: list[str] | None = None,
                 availability_zones: list[str] | None = None,
                 username: str = "demo", password: str = "secret",
                 project_name: str = "demo",
                 private_ipv6: str | None = None) -> None:
        self.lock = threading.RLock()
        self.settings = settings
        self.clock = clock
        self.base_url = ""             # set once the port is known
        self.username, self.password = username, password
        self.project_name = project_name
        self.project_id = uuid.uuid4().hex
        self.user_id = uuid.uuid4().hex
        # Every region gets the same endpoints: one cloud, many names.
        self.regions = ["RegionOne"]
        self.availability_zones = list(availability_zones or ["nova"])
        self._az_turn = 0
        self.tokens: dict[str, float] = {}      # token -> expiry (clock)
        # (clock, accepted) of every password auth (POST auth/tokens)
        self.auth_log: list[tuple[float, bool]] = []
        self.failures: deque[CreateFailure] = deque()
        self.servers: dict[str, ServerRecord] = {}
        self.keypairs: dict[str, dict[str, Any]] = {}
        self.flavors = [self._flavor(i + 1, *f) for i, f in
                        enumerate(flavors or DEFAULT_FLAVORS)]
        self.images = [self._image(name) for name in
                       (images or DEFAULT_IMAGES)]
        self.networks: dict[str, dict[str, Any]] = {}
        self.subnets: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self.floating_ips: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.routers: dict[str, dict[str, Any]] = {}
        self.security_groups: dict[str, dict[str, Any]] = {}
        self._pools: dict[str, _AddressPool] = {}
        #: network id -> (IPv6 subnet id, its address pool)
        self._pools6: dict[str, tuple[str, _AddressPool]] = {}
        self.private_network = self._network("private", PRIVATE_CIDR, False)
        if private_ipv6:
            self._add_ipv6_subnet(self.private_network, private_ipv6)
        self.public_network = self._network("public", PUBLIC_CIDR, True)
        self._router()
        self._security_group()

    # -- fixed inventory -------------------------------------------------
    @staticmethod
    def _flavor(fid: int, name: str, vcpus: int, ram: int,
                disk: int) -> dict[str, Any]:
        return {"id": str(fid), "name": name, "vcpus": vcpus, "ram": ram,
                "disk": disk, "OS-FLV-EXT-DATA:ephemeral": 0, "swap": 0,
                "rxtx_factor": 1.0, "os-flavor-access:is_public": True,
                "OS-FLV-DISABLED:disabled": False, "description": None,
                "extra_specs": {}}

    def _image(self, name: str) -> dict[str, Any]:
        iid = new_id()
        stamp = utcnow_iso()
        return {"id": iid, "name": name, "status": "active",
                "visibility": "public", "protected": False, "os_hidden": False,
                "tags": [], "container_format": "bare", "disk_format": "qcow2",
                "min_disk": 0, "min_ram": 0, "size": 21430272,
                "virtual_size": 117440512, "checksum": uuid.uuid4().hex,
                "os_hash_algo": "sha512", "os_hash_value": uuid.uuid4().hex,
                "owner": self.project_id, "created_at": stamp,
                "updated_at": stamp, "self": f"/v2/images/{iid}",
                "file": f"/v2/images/{iid}/file",
                "schema": "/v2/schemas/image"}

    def _common(self, name: str) -> dict[str, Any]:
        stamp = utcnow_iso()
        return {"id": new_id(), "name": name, "tenant_id": self.project_id,
                "project_id": self.project_id, "created_at": stamp,
                "updated_at": stamp, "revision_number": 1, "tags": [],
                "description": ""}

    def _network(self, name: str, cidr: str,
                 external: bool) -> dict[str, Any]:
        net = self._common(name)
        subnet = self._common(f"{name}-subnet")
        hosts = ipaddress.ip_network(cidr)
        subnet.update({
            "network_id": net["id"], "ip_version": 4, "cidr": cidr,
            "gateway_ip": str(hosts.network_address + 1),
            "enable_dhcp": not external, "dns_nameservers": [],
            "host_routes": [], "ipv6_ra_mode": None,
            "ipv6_address_mode": None, "subnetpool_id": None,
            "service_types": [], "segment_id": None,
            "allocation_pools": [{"start": str(hosts.network_address + 2),
                                  "end": str(hosts.broadcast_address - 1)}]})
        net.update({"status": "ACTIVE", "admin_state_up": True,
                    "shared": external, "router:external": external,
                    "subnets": [subnet["id"]], "mtu": 1450,
                    "availability_zones": list(self.availability_zones),
                    "availability_zone_hints": [], "ipv4_address_scope": None,
                    "ipv6_address_scope": None, "is_default": external,
                    "port_security_enabled": True,
                    "provider:network_type": "flat" if external else "geneve"})
        self.networks[net["id"]] = net
        self.subnets[subnet["id"]] = subnet
        self._pools[net["id"]] = _AddressPool(cidr, 3 if not external else 10)
        return net

    def _add_ipv6_subnet(self, net: dict[str, Any], cidr: str) -> None:
        """Make ``net`` dual-stack: a SLAAC IPv6 subnet next to its IPv4
        one; every port on it then gets an address of each."""
        subnet = self._common(f"{net['name']}-ipv6-subnet")
        hosts = ipaddress.ip_network(cidr)
        subnet.update({
            "network_id": net["id"], "ip_version": 6, "cidr": cidr,
            "gateway_ip": str(hosts.network_address + 1),
            "enable_dhcp": True, "dns_nameservers": [], "host_routes": [],
            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac",
            "subnetpool_id": None, "service_types": [], "segment_id": None,
            "allocation_pools": [{"start": str(hosts.network_address + 2),
                                  "end": str(hosts.network_address
                                             + 0xffff)}]})
        net["subnets"].append(subnet["id"])
        self.subnets[subnet["id"]] = subnet
        self._pools6[net["id"]] = (subnet["id"], _AddressPool(cidr, 3))

    def _router(self) -> None:
        router = self._common("router1")
        public_subnet = self.public_network["subnets"][0]
        router.update({
            "status": "ACTIVE", "admin_state_up": True, "routes": [],
            "availability_zones": list(self.availability_zones),
            "external_gateway_info": {
                "network_id": self.public_network["id"], "enable_snat": True,
                "external_fixed_ips": [{"subnet_id": public_subnet,
                                        "ip_address": "172.24.0.2"}]}})
        self.routers[router["id"]] = router
        # The router's interface on the private subnet makes the private
        # network a valid NAT source for floating IPs.
        self.create_port(self.private_network["id"], device_id=router["id"],
                         device_owner="network:router_interface",
                         status="ACTIVE")

    def _security_group(self) -> None:
        group = self._common("default")
        group.update({"security_group_rules": [], "stateful": True})
        self.security_groups[group["id"]] = group

    # -- lookups ---------------------------------------------------------
    def find_flavor(self, ref: str) -> dict[str, Any] | None:
        ref = ref.rstrip("/").rsplit("/", 1)[-1]
        return next((f for f in self.flavors if ref in (f["id"], f["name"])),
                    None)

    def find_image(self, ref: str) -> dict[str, Any] | None:
        ref = ref.rstrip("/").rsplit("/", 1)[-1]
        return next((i for i in self.images if i["id"] == ref), None)

    def next_zone(self) -> str:
        zone = self.availability_zones[
            self._az_turn % len(self.availability_zones)]
        self._az_turn += 1
        return zone

    def host_id(self, host: str) -> str:
        return hashlib.sha224((self.project_id + host).encode()).hexdigest()

    # -- neutron ---------------------------------------------------------
    def create_port(self, network_id: str, device_id: str = "",
                    device_owner: str = "", status: str = "DOWN",
                    name: str = "") -> dict[str, Any]:
        net = self.networks[network_id]
        if device_owner.startswith("compute:") and self.settings.server_ip:
            address = self.settings.server_ip
        else:
            address = self._pools[network_id].take()
        port = self._common(name)
        port.update({
            "network_id": network_id, "mac_address": _mac(),
            "admin_state_up": True, "status": status,
            "device_id": device_id, "device_owner": device_owner,
            "fixed_ips": [{"subnet_id": net["subnets"][0],
                           "ip_address": address}] + self._ipv6_fixed(
                               network_id),
            "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "security_groups": list(self.security_groups)[:1],
            "binding:vnic_type": "normal", "port_security_enabled": True,
            "dns_name": "", "dns_assignment": [], "propagate_uplink_status":
            False})
        self.ports[port["id"]] = port
        return port

    def _ipv6_fixed(self, network_id: str) -> list[dict[str, str]]:
        if network_id not in self._pools6:
            return []
        subnet_id, pool = self._pools6[network_id]
        return [{"subnet_id": subnet_id, "ip_address": pool.take()}]

    def delete_port(self, port_id: str) -> None:
        self.ports.pop(port_id, None)
        for fip in self.floating_ips.values():
            if fip["port_id"] == port_id:
                self.associate_floating_ip(fip, None, None)

    def create_floating_ip(self, network_id: str) -> dict[str, Any]:
        fip = self._common("")
        fip.update({
            "floating_network_id": network_id,
            "floating_ip_address": self._pools[network_id].take(),
            "router_id": None, "port_id": None, "fixed_ip_address": None,
            "status": "DOWN", "port_details": None, "dns_domain": "",
            "dns_name": "", "qos_policy_id": None})
        self.floating_ips[fip["id"]] = fip
        return fip

    def associate_floating_ip(self, fip: dict[str, Any], port_id: str | None,
                              fixed_ip: str | None) -> None:
        fip["port_id"] = port_id
        fip["fixed_ip_address"] = fixed_ip
        fip["router_id"] = next(iter(self.routers)) if port_id else None
        fip["status"] = "ACTIVE" if port_id else "DOWN"
        fip["updated_at"] = utcnow_iso()
        fip["revision_number"] += 1

    # -- cinder ----------------------------------------------------------
    def create_volume(self, size: int, name: str = "",
                      image_id: str | None = None,
                      status: str = "available") -> dict[str, Any]:
        vol = {"id": new_id(), "name": name, "size": size, "status": status,
               "bootable": "true" if image_id else "false",
               "attachments": [], "availability_zone": "nova",
               "created_at": utcnow_iso(with_micro=True), "updated_at": None,
               "description": None, "volume_type": "lvmdriver-1",
               "snapshot_id": None, "source_volid": None, "metadata": {},
               "encrypted": False, "multiattach": False,
               "os-vol-tenant-attr:tenant_id": self.project_id,
               "user_id": self.user_id, "consistencygroup_id": None,
               "replication_status": None, "group_id": None,
               "volume_image_metadata": ({"image_id": image_id}
                                         if image_id else None)}
        self.volumes[vol["id"]] = vol
        return vol

    def volume_usage(self) -> tuple[int, int]:
        return (len(self.volumes),
                sum(v["size"] for v in self.volumes.values()))

    # -- nova usage and lifecycle ----------------------------------------
    def compute_usage(self) -> dict[str, int]:
        """Nova counts every server record until it is really gone."""
        servers = list(self.servers.values())
        return {"instances": len(servers),
                "cores": sum(s.flavor["vcpus"] for s in servers),
                "ram": sum(s.flavor["ram"] for s in servers)}

    def tick(self) -> None:
        now = self.clock()
        for server in list(self.servers.values()):
            if server.status == "BUILD" and now >= server.ready_at:
                self._finish_build(server)
            if server.gone_at is not None and now >= server.gone_at:
                self._remove_server(server)

    def _finish_build(self, server: ServerRecord) -> None:
        server.task_state = None
        server.updated = utcnow_iso()
        if server.outcome == "ERROR":
            server.status = "ERROR"
            # Nova deallocates the networks of a failed build.
            for port_id in server.port_ids:
                self.delete_port(port_id)
            server.port_ids = []
            return
        server.status = "ACTIVE"
        server.launched_at = utcnow_iso(with_micro=True)
        for port_id in server.port_ids:
            if port_id in self.ports:
                self.ports[port_id]["status"] = "ACTIVE"

    def _remove_server(self, server: ServerRecord) -> None:
        del self.servers[server.id]
        for port_id in server.port_ids:
            port = self.ports.get(port_id)
            if port is None:
                continue
            if self.settings.leak_ports_on_delete:
                port["status"] = "DOWN"
                for fip in self.floating_ips.values():
                    if fip["port_id"] == port_id:
                        self.associate_floating_ip(fip, None, None)
            else:
                self.delete_port(port_id)
        for volume_id, delete_on_termination in server.volumes:
            volume = self.volumes.get(volume_id)
            if volume is None:
                continue
            if delete_on_termination:
                del self.volumes[volume_id]
            else:
                volume.update(status="available", attachments=[])
