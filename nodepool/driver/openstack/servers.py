"""Nova server records: the status table, addresses, and ``Instance``.

Server records are the JSON of ``GET /servers/detail`` at the driver's
microversion (2.47+ embeds the flavor's vCPUs and RAM, which become the
instance's quota cost).  Only ``to_instance`` turns one into the framework's
``Instance``; a status missing from ``STATUS`` becomes UNKNOWN and is
logged once per status.

Addresses are judged as upstream Nodepool reports them (see
``addresses``); ``to_instance`` turns them into the node's fields.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from nodepool.driver.instance import Instance, InstanceState
from nodepool.driver.openstack.addresses import (AddressRules,
                                                 server_addresses,
                                                 with_floating_ip)

__all__ = ["STATUS", "server_state", "floating_addresses",
           "server_resources", "to_instance"]

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


def floating_addresses(record: Record) -> list[str]:
    return [entry["addr"]
            for entries in (record.get("addresses") or {}).values()
            for entry in entries or []
            if entry.get("OS-EXT-IPS:type") == "floating" and
            entry.get("addr")]


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
                rules: AddressRules = AddressRules(),
                resources: Mapping[str, float] | None = None,
                public_ipv4: str | None = None,
                flavor_by_id: Callable[[Any], Any] | None = None
                ) -> Instance:
    """The Instance of a server record, with upstream's field values.

    ``region`` is the provider's ``region-name`` (None without one) and
    ``cloud`` the clouds.yaml cloud name, as upstream writes them.
    ``public_ipv4`` is a floating IP just attached, which the record may
    not show yet; ``resources`` overrides the cost derived from the flavor
    (our own nodes know their label's cost).
    """
    if public_ipv4:
        record = with_floating_ip(record, public_ipv4)
    found = server_addresses(record, rules)
    return Instance(
        external_id=str(record["id"]),
        state=server_state(record),
        interface_ip=found.interface_ip,
        public_ipv4=found.public_v4,
        # upstream's backwards-compatible rule: no private address, the
        # public one is written as private_ipv4 too
        private_ipv4=found.private_v4 or found.public_v4,
        public_ipv6=found.public_v6,
        az=record.get("OS-EXT-AZ:availability_zone"),
        region=region,
        cloud=cloud,
        host_id=record.get("hostId"),
        metadata=dict(record.get("metadata") or {}),
        resources=(dict(resources) if resources is not None
                   else server_resources(record, flavor_by_id)),
    )
