"""RunInstances parameters and tags from a LaunchSpec (pure logic).

Everything here is a function of the config and the spec, so it is unit
tested without a cloud.  The create path calls it from a create-pool
worker, after the image has been resolved (the root device name and its
default volume come from the AMI).

Tags: every instance carries the label ``tags`` (values as strings), the
rendered ``dynamic-tags``, the ``nodepool_*`` metadata and ``Name`` (the
hostname; it overrides a label tag called ``Name``).  A batched create
splits them: ``shared_tags`` go into TagSpecifications (the same for every
instance of the call, together with the batch marker of ``batchtags``), and
``node_tags`` are what differs per node (node id, Name, dynamic tags).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from nodepool.driver.statemachine import LaunchSpec

__all__ = ["all_tags", "shared_tags", "node_tags", "dynamic_tags",
           "tag_list", "tag_specifications", "launch_params",
           "block_device_mappings", "batch_key"]


#: the node-specific keys of ``LaunchSpec.metadata``
NODE_KEYS = ("nodepool_node_id",)
SPOT_OPTIONS = {"MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time",
                                "InstanceInterruptionBehavior": "terminate"}}


def dynamic_tags(spec: LaunchSpec) -> dict[str, str]:
    """The label's ``dynamic-tags`` rendered over the request."""
    return spec.render("dynamic-tags")


def shared_tags(spec: LaunchSpec) -> dict[str, str]:
    """Tags every node of this label/pool gets: label tags + pool/provider."""
    tags = {str(k): str(v) for k, v in
            (spec.label.settings.get("tags") or {}).items()}
    metadata = spec.metadata
    for key, value in metadata.items():
        if key not in NODE_KEYS:
            tags[key] = value
    return tags


def node_tags(spec: LaunchSpec) -> dict[str, str]:
    """Tags that differ per node: dynamic tags, node id and Name."""
    tags = dynamic_tags(spec)
    metadata = spec.metadata
    for key in NODE_KEYS:
        tags[key] = metadata[key]
    tags["Name"] = spec.hostname
    return tags


def all_tags(spec: LaunchSpec) -> dict[str, str]:
    """Everything one instance carries (unbatched creates)."""
    tags = shared_tags(spec)
    tags.update(node_tags(spec))
    # Our own keys win over a dynamic tag of the same name.
    tags.update(spec.metadata)
    tags["Name"] = spec.hostname
    return tags


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_specifications(tags: Mapping[str, str],
                       resource_types: tuple[str, ...] = ("instance",
                                                          "volume")
                       ) -> list[dict]:
    """The same tags for the instance and the volumes it creates."""
    return [{"ResourceType": kind, "Tags": tag_list(tags)}
            for kind in resource_types]


def block_device_mappings(settings: Mapping[str, Any],
                          image: Mapping[str, Any]) -> list[dict] | None:
    """The root volume's overrides, or None to keep the AMI's defaults.

    Starts from the AMI's own mapping for its root device (so the snapshot
    stays), drops ``Encrypted`` (EC2 refuses it next to a snapshot of an
    encrypted AMI) and applies volume-type/size/iops/throughput.
    """
    overrides = {"VolumeType": settings.get("volume-type"),
                 "VolumeSize": settings.get("volume-size"),
                 "Iops": settings.get("iops"),
                 "Throughput": settings.get("throughput")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return None
    root = image.get("RootDeviceName") or "/dev/xvda"
    ebs: dict[str, Any] = {}
    for mapping in image.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == root and "Ebs" in mapping:
            ebs = copy.deepcopy(mapping["Ebs"])
    ebs.pop("Encrypted", None)
    ebs.update(overrides)
    volume_type = ebs.get("VolumeType")
    if volume_type not in ("io1", "io2", "gp3"):
        ebs.pop("Iops", None)
    if volume_type != "gp3":
        ebs.pop("Throughput", None)
    ebs["DeleteOnTermination"] = True
    return [{"DeviceName": root, "Ebs": ebs}]


def _network_interface(pool: Mapping[str, Any]) -> dict:
    nic: dict[str, Any] = {
        "DeviceIndex": 0,
        "DeleteOnTermination": True,
        "AssociatePublicIpAddress": bool(pool.get("public-ipv4", True)),
    }
    if pool.get("subnet-id"):
        nic["SubnetId"] = pool["subnet-id"]
    if pool.get("security-group-id"):
        nic["Groups"] = [pool["security-group-id"]]
    if pool.get("public-ipv6"):
        nic["Ipv6AddressCount"] = 1
    return nic


def launch_params(spec: LaunchSpec, image: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """RunInstances keywords except counts, ClientToken and tags.

    ``image`` is the DescribeImages record of the resolved AMI.
    """
    label = spec.label.settings
    pool = spec.pool.settings
    params: dict[str, Any] = {
        "ImageId": image["ImageId"],
        "InstanceType": label["instance-type"],
        "KeyName": label["key-name"],
        "NetworkInterfaces": [_network_interface(pool)],
    }
    if label.get("ebs-optimized"):
        params["EbsOptimized"] = True
    if label.get("userdata"):
        params["UserData"] = label["userdata"]  # boto3 base64-encodes it
    profile = label.get("iam-instance-profile") or {}
    if profile.get("name"):
        params["IamInstanceProfile"] = {"Name": profile["name"]}
    elif profile.get("arn"):
        params["IamInstanceProfile"] = {"Arn": profile["arn"]}
    if label.get("use-spot"):
        params["InstanceMarketOptions"] = copy.deepcopy(SPOT_OPTIONS)
    if label.get("imdsv2") in ("required", "optional"):
        params["MetadataOptions"] = {"HttpTokens": label["imdsv2"],
                                     "HttpEndpoint": "enabled"}
    mappings = block_device_mappings(label, image)
    if mappings:
        params["BlockDeviceMappings"] = mappings
    az = pool.get("availability-zone") or (
        spec.az if not pool.get("subnet-id") else None)
    if az:
        params["Placement"] = {"AvailabilityZone": az}
    return params


def batch_key(spec: LaunchSpec) -> tuple:
    """Launches with equal keys can share one RunInstances call.

    Everything that shapes the call comes from the pool and label config
    (by name: a reload restarts the provider), the image reference and the
    zone; what differs per node is only tagged per node.
    """
    return (spec.pool.name, spec.label.name, spec.image_external_id,
            spec.az if not spec.pool.settings.get("subnet-id") else None)
