"""Nova server records: the status table, addresses, and ``Instance``.

Server records are the JSON of ``GET /servers/detail`` at the driver's
microversion (2.47+ embeds the flavor's vCPUs and RAM, which become the
instance's quota cost).  Only ``to_instance`` turns one into the framework's
``Instance``; a status missing from ``STATUS`` becomes UNKNOWN and is
logged once per status.

Addresses: an IPv4 address is public when Nova marks it ``floating``, when
it sits on an external network (``router:external``, or ``routes_externally``
in clouds.yaml), or when it is a globally routable address on a network
clouds.yaml does not mark internal; other IPv4 addresses are private.
``accessIPv4`` counts as public only when it is a global address.
Any non-link-local IPv6 address is public (OpenStack routes v6 directly).
``needs_floating_ip`` is the auto-floating-ip rule: a server without any
public address gets one (upstream's SDK ``auto_ip`` behaves the same).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable, Mapping

from nodepool.driver.instance import Instance, InstanceState

__all__ = ["STATUS", "server_state", "addresses", "needs_floating_ip",
           "floating_addresses", "server_resources", "to_instance"]

log = logging.getLogger(__name__)

STATUS = {
    "BUILD": InstanceState.PENDING,
    "REBUILD": InstanceState.PENDING,
    "ACTIVE": InstanceState.RUNNING,
    "ERROR": InstanceState.ERROR,
    "DELETED": InstanceState.DELETED,
    "SOFT_DELETED": InstanceState.DELETED,
    "SHUTOFF": InstanceState.STOPPING,
    "STOPPED": InstanceState.STOPPING,
    "SUSPENDED": InstanceState.STOPPING,
    "PAUSED": InstanceState.STOPPING,
    "SHELVED": InstanceState.STOPPING,
    "SHELVED_OFFLOADED": InstanceState.STOPPING,
}
_warned: set[str] = set()

Record = Mapping[str, Any]


def server_state(record: Record) -> InstanceState:
    if record.get("OS-EXT-STS:task_state") == "deleting":
        return InstanceState.STOPPING
    status = str(record.get("status") or "").upper()
    state = STATUS.get(status)
    if state is None:
        if status not in _warned:
            _warned.add(status)
            log.warning("Unknown server status %r (server %s)", status,
                        record.get("id"))
        return InstanceState.UNKNOWN
    return state


def _is_global(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def addresses(record: Record, external_networks: set[str] = frozenset(),
              internal_networks: set[str] = frozenset()
              ) -> tuple[str | None, str | None, str | None]:
    """(public IPv4, private IPv4, public IPv6) of a server record."""
    floating, public4, private4, public6 = [], [], [], []
    for network, entries in (record.get("addresses") or {}).items():
        for entry in entries or []:
            addr = entry.get("addr")
            if not addr:
                continue
            if entry.get("version") == 6:
                try:
                    if not ipaddress.ip_address(addr).is_link_local:
                        public6.append(addr)
                except ValueError:
                    continue
            elif entry.get("OS-EXT-IPS:type") == "floating":
                floating.append(addr)
            elif network in external_networks:
                public4.append(addr)
            elif network not in internal_networks and _is_global(addr):
                public4.append(addr)     # a routable provider network
            else:
                private4.append(addr)
    public = floating + public4
    access = record.get("accessIPv4") or ""
    if not public and access and _is_global(access):
        public.append(access)
    return (public[0] if public else None,
            private4[0] if private4 else None,
            public6[0] if public6 else None)


def floating_addresses(record: Record) -> list[str]:
    return [entry["addr"]
            for entries in (record.get("addresses") or {}).values()
            for entry in entries or []
            if entry.get("OS-EXT-IPS:type") == "floating" and
            entry.get("addr")]


def needs_floating_ip(record: Record,
                      external_networks: set[str] = frozenset(),
                      internal_networks: set[str] = frozenset()) -> bool:
    public4, _, public6 = addresses(record, external_networks,
                                    internal_networks)
    return public4 is None and public6 is None


def server_resources(record: Record,
                     flavor_by_id: Callable[[Any], Any] | None = None
                     ) -> dict[str, float] | None:
    """Quota a server uses, from its embedded flavor (or a flavor lookup)."""
    flavor = record.get("flavor") or {}
    vcpus, ram = flavor.get("vcpus"), flavor.get("ram")
    if (vcpus is None or ram is None) and flavor_by_id and flavor.get("id"):
        known = flavor_by_id(flavor["id"])
        if known is not None:
            vcpus, ram = known.vcpus, known.ram
    if vcpus is None or ram is None:
        return None
    values: dict[str, float] = {"instances": 1, "cores": vcpus, "ram": ram}
    volumes = record.get("os-extended-volumes:volumes_attached") or []
    if volumes:
        values["volumes"] = len(volumes)
    return values


def to_instance(record: Record, *, region: str | None = None,
                cloud: str | None = None,
                external_networks: set[str] = frozenset(),
                internal_networks: set[str] = frozenset(),
                resources: Mapping[str, float] | None = None,
                public_ipv4: str | None = None,
                flavor_by_id: Callable[[Any], Any] | None = None
                ) -> Instance:
    """The Instance of a server record.

    ``public_ipv4`` overrides the record's (a floating IP just attached,
    which the record may not show yet); ``resources`` overrides the cost
    derived from the flavor (our own nodes know their volume size).
    """
    found4, private4, public6 = addresses(record, external_networks,
                                          internal_networks)
    public4 = public_ipv4 or found4
    return Instance(
        external_id=record["id"],
        state=server_state(record),
        interface_ip=public4 or public6 or private4,
        public_ipv4=public4,
        private_ipv4=private4,
        public_ipv6=public6,
        az=record.get("OS-EXT-AZ:availability_zone") or None,
        region=region,
        cloud=cloud,
        host_id=record.get("hostId") or None,
        metadata=dict(record.get("metadata") or {}),
        resources=(dict(resources) if resources is not None
                   else server_resources(record, flavor_by_id)),
        driver_data={"name": record.get("name"),
                     "status": record.get("status")},
    )
