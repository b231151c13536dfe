"""EC2 instance records → framework ``Instance`` values.

One table maps EC2's state names onto ``InstanceState`` (an unknown name
becomes UNKNOWN and is logged); ``tags_of`` reads an instance's tags and
fills in ``nodepool_node_id`` for batch-created instances from the batch
tags and the instance's launch index (``batchtags``), so callers never
need to know whether an instance was created alone or in a batch.
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
    """The instance's tags, plus ``nodepool_node_id`` derived for batches."""
    tags = {t["Key"]: t["Value"] for t in record.get("Tags") or []}
    node_id = batchtags.node_id_of(tags, record.get("AmiLaunchIndex"))
    if node_id:
        tags["nodepool_node_id"] = node_id
    return tags


def _ipv6(record: Mapping[str, Any]) -> str | None:
    if record.get("Ipv6Address"):
        return record["Ipv6Address"]
    for nic in record.get("NetworkInterfaces") or []:
        for address in nic.get("Ipv6Addresses") or []:
            if address.get("Ipv6Address"):
                return address["Ipv6Address"]
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
        host_id=placement.get("HostId"),
        metadata=tags_of(record),
        resources=dict(resources) if resources else None,
        node_properties={"spot": record.get("InstanceLifecycle") == "spot",
                         "fleet": False},
        driver_data={"instance_type": record.get("InstanceType")},
    )
