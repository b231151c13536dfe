"""EC2 instance records → framework ``Instance`` values.

One table maps EC2's state names onto ``InstanceState`` (an unknown name
becomes UNKNOWN and is logged); ``tags_of`` reads an instance's tags and
sets ``nodepool_node_id`` to the instance's *true* node (``batchtags.
node_id_of``: a batch-created instance may carry its batch's anchor id
until the tagger has retagged it), so callers never need to know whether
an instance was created alone or in a batch.

The address fields follow upstream Nodepool's mapping of an EC2 record:
``public_ipv4``/``private_ipv4`` from ``PublicIpAddress``/
``PrivateIpAddress``, ``public_ipv6`` the first address of the first
network interface, ``interface_ip`` the first of public IPv4, IPv6,
private IPv4; ``cloud`` "AWS", ``az`` the placement zone, no ``host_id``.

``external_id`` of a *listed* instance is its plain instance id: it is
the handle the launcher's leak and crash-recovery paths hand back to
``delete_machine`` and compare with the ids of a node's ``external_id``
(which ``split_external_id`` reads in either shape).  What a node stores
is upstream's object form, set by the create machine.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from nodepool.driver.aws import batchtags
from nodepool.driver.instance import Instance, InstanceState

__all__ = ["STATE_MAP", "to_instance", "instance_state", "tags_of"]

log = logging.getLogger(__name__)

#: EC2 instance state names → framework states (Libcloud's NODE_STATE_MAP)
STATE_MAP: Mapping[str, InstanceState] = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "shutting-down": InstanceState.STOPPING,
    "stopping": InstanceState.STOPPING,
    "terminated": InstanceState.DELETED,
    "stopped": InstanceState.ERROR,   # never comes back by itself
}


def instance_state(record: Mapping[str, Any]) -> InstanceState:
    name = (record.get("State") or {}).get("Name", "")
    state = STATE_MAP.get(name)
    if state is None:
        log.warning("Instance %s has unknown state %r",
                    record.get("InstanceId"), name)
        return InstanceState.UNKNOWN
    return state


def tags_of(record: Mapping[str, Any]) -> dict[str, str]:
    """The record's tags, ``nodepool_node_id`` being its true node (none
    when a batch's mapping cannot place it)."""
    tags = {t["Key"]: t["Value"] for t in record.get("Tags") or []}
    node_id = batchtags.node_id_of(tags, record.get("AmiLaunchIndex"))
    if node_id:
        tags[batchtags.NODE_ID] = node_id
    else:
        tags.pop(batchtags.NODE_ID, None)
    return tags


def _ipv6(record: Mapping[str, Any]) -> str | None:
    """The first IPv6 address of the first network interface."""
    for nic in (record.get("NetworkInterfaces") or [])[:1]:
        addresses = nic.get("Ipv6Addresses") or []
        if addresses:
            return addresses[0].get("Ipv6Address")
    return None


def to_instance(record: Mapping[str, Any], region: str,
                resources: Mapping[str, float] | None = None) -> Instance:
    """An ``Instance`` from a DescribeInstances/RunInstances record."""
    private = record.get("PrivateIpAddress")
    public = record.get("PublicIpAddress")
    ipv6 = _ipv6(record)
    placement = record.get("Placement") or {}
    return Instance(
        external_id=record["InstanceId"],
        state=instance_state(record),
        interface_ip=public or ipv6 or private,
        public_ipv4=public,
        private_ipv4=private,
        public_ipv6=ipv6,
        az=placement.get("AvailabilityZone"),
        region=region,
        cloud="AWS",
        host_id=None,
        metadata=tags_of(record),
        resources=dict(resources) if resources else None,
        node_properties={"spot": record.get("InstanceLifecycle") == "spot",
                         "fleet": False},
        driver_data={"instance_type": record.get("InstanceType")},
    )
