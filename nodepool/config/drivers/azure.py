"""Azure provider schema and values (config.md §6).

``rate`` is requests per second against the Azure API (1.0 by default,
anything ``float()`` accepts).  ``network`` is normalised to a mapping
``{resource-group, network, subnet}`` (a bare string names a network in the
provider's resource group with subnet ``default``); validation does not
require a network, the adapter refuses to start without one (§9).

IP settings: pools default each of ``ipv4``, ``ipv6``, ``public-ipv4``,
``public-ipv6``, ``use-internal-ip``, ``host-key-checking`` to the
provider's; the effective ``ipv4`` is ``ipv4 or public-ipv4`` and is forced
true when neither address family would otherwise be enabled.

Loader-only keys (§8.1): ``password`` and ``generate-password`` in
provider ``diskimages`` entries.  Every pool must set ``max-servers``
(upstream fails to load a pool without it).
"""

from __future__ import annotations

from typing import Any

from voluptuous import Required

from nodepool.config.drivers import common
from nodepool.config.drivers.common import (
    CLOUD_PROVIDER_COMMON, IMAGE_CONNECTION, POOL_COMMON, PROVIDER_COMMON)
from nodepool.config.driverschema import (
    BuildContext, CheckContext, DriverSchema)
from nodepool.config.errors import Issue, Path
from nodepool.config.model import Pool, Provider
from nodepool.config.validators import Int, ListOf, Rate, StrOr, Struct

GALLERY_IMAGE = Struct({Required("gallery-name"): str, Required("name"): str,
                        "version": str})

CLOUD_IMAGE = Struct({
    Required("name"): str,
    Required("username"): str,
    "password": str,
    "generate-password": bool,
    "key": str,
    "image-reference": Struct({Required("sku"): str,
                               Required("publisher"): str,
                               Required("offer"): str,
                               Required("version"): str}),
    "image-id": str,
    "image-filter": Struct({"name": str, "location": str, "tags": dict}),
    "shared-gallery-image": GALLERY_IMAGE,
    "community-gallery-image": GALLERY_IMAGE,
    **IMAGE_CONNECTION,
}, exactly_one=[("image-reference", "image-id", "image-filter",
                 "shared-gallery-image", "community-gallery-image")])

DISKIMAGE = Struct({
    Required("name"): str,
    "username": str,
    "key": str,
    **IMAGE_CONNECTION,
    "pause": bool,             # upload only
    "tags": dict,              # upload only
    "password": str,           # loader-only
    "generate-password": bool,  # loader-only
})

LABEL = Struct({
    Required("name"): str,
    "cloud-image": str,
    "diskimage": str,
    Required("hardware-profile"): Struct({Required("vm-size"): str}),
    "tags": dict,
    "dynamic-tags": dict,
    "user-data": str,
    "custom-data": str,
    "volume-size": Int,
})

IP_KEYS = {"ipv4": bool, "ipv6": bool, "public-ipv4": bool,
           "public-ipv6": bool, "use-internal-ip": bool,
           "host-key-checking": bool}

# A Required marker equals its plain key, so the common optional
# ``max-servers`` must be dropped first or it would shadow the marker.
POOL = Struct({
    **{k: v for k, v in POOL_COMMON.items() if k != "max-servers"},
    # Upstream's loader fails on a pool without it (config.md §8.2 item 5).
    Required("max-servers"): Int,
    Required("labels"): ListOf(LABEL),
    **IP_KEYS,
})

PROVIDER = Struct({
    **PROVIDER_COMMON,
    **CLOUD_PROVIDER_COMMON,
    Required("location"): str,
    Required("resource-group"): str,
    Required("resource-group-location"): str,
    Required("auth-path"): str,
    "network": StrOr(Struct({"resource-group": str, "network": str,
                             "subnet": str})),
    "subnet-id": str,
    **IP_KEYS,
    "rate": Rate(strings=True),
    "zuul-public-key": str,
    "cloud-images": ListOf(CLOUD_IMAGE),
    "diskimages": ListOf(DISKIMAGE),
    Required("pools"): ListOf(POOL),
})

LOADER_ONLY = (("diskimages", "*", "password"),
               ("diskimages", "*", "generate-password"))

IMAGE_SOURCES = ("image-reference", "image-id", "image-filter",
                 "shared-gallery-image", "community-gallery-image")

LABEL_SETTINGS = {"hardware-profile": None, "tags": {}, "dynamic-tags": {},
                  "user-data": None, "custom-data": None, "volume-size": None}


def check(raw: dict, path: Path, ctx: CheckContext) -> list[Issue]:
    return common.check_cloud_provider(raw, path, ctx,
                                       label_diskimage_scope="provider")


def _network(raw: dict) -> dict[str, Any] | None:
    value = raw.get("network")
    if value is None:
        return None
    if isinstance(value, str):
        value = {"network": value}
    return {"resource-group": value.get("resource-group",
                                        raw["resource-group"]),
            "network": value.get("network"),
            "subnet": value.get("subnet", "default")}


def _ip_settings(raw: dict, defaults: dict[str, Any]) -> dict[str, Any]:
    values = {key: raw.get(key, defaults.get(key))
              for key in ("ipv4", "ipv6", "public-ipv4", "public-ipv6",
                          "use-internal-ip", "host-key-checking")}
    ipv4 = bool(values["ipv4"] or values["public-ipv4"])
    ipv6 = bool(values["ipv6"] or values["public-ipv6"])
    values["ipv4"] = ipv4 or not ipv6
    values["ipv6"] = ipv6
    return values


PROVIDER_IP_DEFAULTS = {"ipv4": None, "ipv6": False, "public-ipv4": True,
                        "public-ipv6": False, "use-internal-ip": False,
                        "host-key-checking": True}


def _image_settings(entry: dict, key_default: str | None) -> dict[str, Any]:
    settings = common.pick(entry, {name: None for name in IMAGE_SOURCES})
    settings["password"] = entry.get("password")
    settings["generate-password"] = entry.get("generate-password", False)
    settings["key"] = entry.get("key", key_default)
    return settings


def _pool(raw: dict, pool: dict, provider_ip: dict, images: dict) -> Pool:
    # With both set the diskimage wins, as upstream.
    labels = common.by_name(pool["labels"], lambda label: common.pool_label(
        label, images, common.pick(label, LABEL_SETTINGS),
        diskimage_first=True))
    return Pool(
        name=pool["name"], provider_name=raw["name"],
        max_servers=common.limit(pool, "max-servers"),
        priority=common.pool_priority(pool, raw),
        node_attributes=common.node_attributes(pool),
        labels=labels, settings=_ip_settings(pool, provider_ip))


def build(raw: dict, ctx: BuildContext) -> Provider:
    zuul_key = raw.get("zuul-public-key")
    cloud_images = common.by_name(raw.get("cloud-images"), lambda ci: (
        common.cloud_image(ci, _image_settings(ci, zuul_key))))
    diskimages = common.provider_diskimages(raw, ctx, lambda di: {
        **_image_settings(di, None), "pause": di.get("pause", False),
        "tags": dict(di.get("tags", {}))})
    provider_ip = {key: raw.get(key, default)
                   for key, default in PROVIDER_IP_DEFAULTS.items()}
    settings = common.pick(raw, {
        "location": None, "resource-group": None,
        "resource-group-location": None, "auth-path": None,
        "subnet-id": None, "zuul-public-key": None,
        "post-upload-hook": None})
    settings["network"] = _network(raw)
    settings.update(_ip_settings(raw, PROVIDER_IP_DEFAULTS))
    return common.cloud_provider(
        raw, cloud_images, diskimages, settings, boot_timeout=120, rate=1.0,
        pool=lambda pool, images: _pool(raw, pool, provider_ip, images))


DRIVER = DriverSchema(name="azure", schema=PROVIDER, loader_only=LOADER_ONLY,
                      check=check, build=build)
