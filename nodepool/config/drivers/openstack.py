"""OpenStack provider schema and values (config.md §5); the default driver.

``rate`` keeps OpenStack's meaning: *seconds between API calls* (1.0 by
default, anything ``float()`` accepts), the inverse of AWS and Azure; the
adapter converts it for openstacksdk.

A label's ``diskimage`` names a non-abstract *top-level* diskimage; if the
provider has no ``diskimages`` entry for it the label's ``image`` is None
(never uploaded here, so never launchable), exactly as upstream.  Provider
diskimage entries always take ``username`` and ``python-path`` from the
top-level diskimage.

Pool ``max-volumes`` / ``max-volume-gb`` appear in ``Pool.max_resources`` as
``volumes`` / ``volume-gb`` (the node resource names) when set.
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
from nodepool.config.model import Pool, PoolLabel, Provider
from nodepool.config.validators import (
    Int, ListOf, Port, PositiveInt, Rate, Struct)

CLOUD_IMAGE = Struct({
    Required("name"): str,
    "image-id": str,
    "image-name": str,
    "config-drive": bool,
    "username": str,
    **IMAGE_CONNECTION,
}, at_most_one=[("image-id", "image-name")])

DISKIMAGE = Struct({
    Required("name"): str,
    "config-drive": bool,
    "connection-type": str,
    "connection-port": Port,
    "pause": bool,  # upload only
    "meta": dict,   # upload only
})

LABEL = Struct({
    Required("name"): str,
    "cloud-image": str,
    "diskimage": str,
    "flavor-name": str,
    "min-ram": Int,
    "key-name": str,
    "console-log": bool,
    "boot-from-volume": bool,
    "volume-size": Int,
    "instance-properties": dict,
    "dynamic-instance-properties": dict,
    "userdata": str,
    "networks": ListOf(str),
    "host-key-checking": bool,
}, exactly_one=[("cloud-image", "diskimage")],
    at_least_one=[("flavor-name", "min-ram")])

POOL = Struct({
    **POOL_COMMON,
    "labels": ListOf(LABEL),
    "max-cores": Int,
    "max-ram": Int,
    "max-volumes": Int,
    "max-volume-gb": Int,
    "ignore-provider-quota": bool,
    "availability-zones": ListOf(str),
    "networks": ListOf(str),
    "security-groups": ListOf(str),
    "auto-floating-ip": bool,
    "host-key-checking": bool,
})

PROVIDER = Struct({
    **PROVIDER_COMMON,
    **CLOUD_PROVIDER_COMMON,
    Required("cloud"): str,
    "region-name": str,
    "rate": Rate(strings=True),
    "clean-floating-ips": bool,
    "port-cleanup-interval": Int,
    "nodepool-id": str,           # deprecated, ignored
    "image-upload-timeout": PositiveInt,  # upload only
    "image-name-format": str,     # upload only
    "cloud-images": ListOf(CLOUD_IMAGE),
    "diskimages": ListOf(DISKIMAGE),
    "pools": ListOf(POOL),
})

PROVIDER_SETTINGS = {
    "cloud": None, "region-name": None, "clean-floating-ips": False,
    "port-cleanup-interval": 600, "nodepool-id": None,
    "image-upload-timeout": 3600, "image-name-format":
    "{image_name}-{timestamp}", "post-upload-hook": None,
}

POOL_SETTINGS = {
    "availability-zones": None,
    "networks": [], "security-groups": [], "auto-floating-ip": True,
    "host-key-checking": True,
}

LABEL_SETTINGS = {
    "flavor-name": None, "min-ram": None, "key-name": None,
    "console-log": False, "boot-from-volume": False, "volume-size": 50,
    "instance-properties": {}, "dynamic-instance-properties": {},
    "userdata": None,
}


def check(raw: dict, path: Path, ctx: CheckContext) -> list[Issue]:
    return common.check_cloud_provider(raw, path, ctx,
                                       label_diskimage_scope="top-level")


def _label(label: dict, pool_settings: dict[str, Any], images: dict
           ) -> PoolLabel:
    settings = common.pick(label, LABEL_SETTINGS)
    settings["networks"] = list(label.get("networks",
                                          pool_settings["networks"]))
    settings["host-key-checking"] = label.get(
        "host-key-checking", pool_settings["host-key-checking"])
    return common.pool_label(label, images, settings)


def _pool(raw: dict, pool: dict, images: dict) -> Pool:
    settings = common.pick(pool, POOL_SETTINGS)
    settings["max-volumes"] = common.limit(pool, "max-volumes")
    settings["max-volume-gb"] = common.limit(pool, "max-volume-gb")
    max_resources = {}
    if "max-volumes" in pool:
        max_resources["volumes"] = int(pool["max-volumes"])
    if "max-volume-gb" in pool:
        max_resources["volume-gb"] = int(pool["max-volume-gb"])
    labels = common.by_name(pool.get("labels"),
                            lambda label: _label(label, settings, images))
    return Pool(
        name=pool["name"], provider_name=raw["name"],
        max_servers=common.limit(pool, "max-servers"),
        max_cores=common.limit(pool, "max-cores"),
        max_ram=common.limit(pool, "max-ram"),
        max_resources=max_resources,
        ignore_provider_quota=pool.get("ignore-provider-quota", False),
        priority=common.pool_priority(pool, raw),
        node_attributes=common.node_attributes(pool),
        labels=labels, settings=settings)


def _cloud_image(entry: dict):
    settings = common.pick(entry, {"image-id": None, "config-drive": None})
    # Neither image-id nor image-name: the entry's name is the image name.
    if "image-id" not in entry:
        settings["image-name"] = entry.get("image-name", entry["name"])
    else:
        settings["image-name"] = None
    return common.cloud_image(entry, settings)


def build(raw: dict, ctx: BuildContext) -> Provider:
    cloud_images = common.by_name(raw.get("cloud-images"), _cloud_image)

    def diskimage(entry: dict):
        top = ctx.diskimages[entry["name"]]
        return common.provider_diskimage(
            entry, common.pick(entry, {"config-drive": None, "pause": False,
                                       "meta": {}}),
            username=top.username, python_path=top.python_path,
            shell_type=top.shell_type)

    diskimages = common.by_name(raw.get("diskimages"), diskimage)
    return common.cloud_provider(
        raw, cloud_images, diskimages, common.pick(raw, PROVIDER_SETTINGS),
        boot_timeout=60, rate=1.0,
        pool=lambda pool, images: _pool(raw, pool, images))


DRIVER = DriverSchema(name="openstack", schema=PROVIDER, loader_only=(),
                      check=check, build=build)
