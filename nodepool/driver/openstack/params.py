"""The ``POST /servers`` body for one launch, and what goes into it.

Pure functions of the launch spec and the resolved cloud objects, so every
key of config.md §5 can be checked without a cloud:

- ``name`` is the node's hostname; ``metadata`` holds the label's
  ``instance-properties``, its rendered ``dynamic-instance-properties``,
  upstream's ``groups`` (provider, image, label, for Ansible inventories)
  and the ``nodepool_*`` keys leak detection needs, which always win;
- networks: the label's (else the pool's) network names, else ``auto``
  (the 2.37+ spelling of "whatever the project has");
- ``security_groups``, ``key_name``, ``user_data`` (base64, as Nova wants),
  ``config_drive`` from the image entry;
- ``boot-from-volume``: a ``volume-size`` GB volume made from the image,
  deleted with the server (so it cannot leak), and no ``imageRef``.

Availability zone (behaviour 2): a node that already has one (the request's
nodeset chose it) keeps it; otherwise the zone is picked from the pool's
``availability-zones`` or else the cloud's zones, by a hash of the request
id, so every node of one request lands in the same zone without the nodes
talking to each other, while different requests spread over the zones.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, Sequence

from nodepool.driver.statemachine import LaunchSpec

__all__ = ["server_body", "metadata", "choose_az", "encode_user_data",
           "image_name"]


#: Nova refuses metadata values longer than this
MAX_META = 255


def image_name(spec: LaunchSpec) -> str:
    label = spec.label
    return label.cloud_image or label.diskimage or ""


def _text(value: Any) -> str:
    return str(value)[:MAX_META]


def metadata(spec: LaunchSpec) -> dict[str, str]:
    settings = spec.label.settings
    meta = {"groups": ",".join(x for x in (spec.provider_name,
                                           image_name(spec),
                                           spec.label.name) if x)}
    for key, value in (settings.get("instance-properties") or {}).items():
        meta[str(key)] = _text(value)
    for key, value in spec.render("dynamic-instance-properties").items():
        meta[key] = _text(value)
    meta.update(spec.metadata)
    return meta


def encode_user_data(text: str | None) -> str | None:
    if text is None:
        return None
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def choose_az(spec: LaunchSpec, cloud_zones: Sequence[str]) -> str | None:
    """The zone for this node (see the module docstring); None: Nova picks."""
    if spec.az:
        return spec.az
    zones = list(spec.pool.settings.get("availability-zones") or cloud_zones)
    if not zones:
        return None
    key = spec.request.id or spec.node_id
    return sorted(zones)[zlib.crc32(str(key).encode()) % len(zones)]


def server_body(spec: LaunchSpec, *, flavor_id: str, image_id: str,
                network_ids: Sequence[str], az: str | None,
                networks_required: bool = True,
                config_drive: bool | None = None) -> dict[str, Any]:
    """The ``server`` object of a create request for one node."""
    settings = spec.label.settings
    body: dict[str, Any] = {
        "name": spec.hostname,
        "flavorRef": flavor_id,
        "metadata": metadata(spec),
        "min_count": 1,
        "max_count": 1,
    }
    if network_ids:
        body["networks"] = [{"uuid": nid} for nid in network_ids]
    elif networks_required:
        body["networks"] = "auto"
    if settings.get("boot-from-volume"):
        body["block_device_mapping_v2"] = [{
            "boot_index": 0, "uuid": image_id, "source_type": "image",
            "destination_type": "volume",
            "volume_size": int(settings.get("volume-size") or 50),
            "delete_on_termination": True}]
    else:
        body["imageRef"] = image_id
    if az:
        body["availability_zone"] = az
    groups = spec.pool.settings.get("security-groups") or []
    if groups:
        body["security_groups"] = [{"name": g} for g in groups]
    if settings.get("key-name"):
        body["key_name"] = settings["key-name"]
    user_data = encode_user_data(settings.get("userdata"))
    if user_data is not None:
        body["user_data"] = user_data
    if config_drive is not None:
        body["config_drive"] = bool(config_drive)
    return body
