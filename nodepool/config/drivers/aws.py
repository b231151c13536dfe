"""AWS provider schema and values (config.md §4).

``rate`` here is requests per second for mutating EC2 calls (2.0 by
default); pools default their limits to the provider's ``max-servers``,
``max-cores``, ``max-ram`` and merge ``max-resources`` over the provider's.

Loader-only keys (accepted with a warning, §8.1): provider-level
``use-internal-ip``, ``host-key-checking``, ``public-ipv4``, ``public-ipv6``
(defaults for every pool) and pool-level ``use-internal-ip``.

``batch-creates`` (bool, default true; this project's own key, unknown
upstream): launches of one pool label that arrive within a few tens of
milliseconds share one RunInstances call (MaxCount=N, one ClientToken);
each instance is mapped back to its node through tags written at creation.
Set it to false to send one RunInstances per node, as upstream does.

Load checks (§8.2 item 5): ``dedicated-host`` needs the pool's
``availability-zone`` and excludes ``use-spot``; a diskimage with
``imds-support: v2.0`` can not use ``import-method: image``.
"""

from __future__ import annotations

from typing import Any, Iterator

import voluptuous as vol
from voluptuous import Required

from nodepool.config.drivers import common
from nodepool.config.drivers.common import (
    CLOUD_PROVIDER_COMMON, IMAGE_CONNECTION, POOL_COMMON, PROVIDER_COMMON,
    UNLIMITED)
from nodepool.config.driverschema import (
    BuildContext, CheckContext, DriverSchema)
from nodepool.config.errors import Issue, Path
from nodepool.config.model import Pool, Provider
from nodepool.config.validators import (
    Choice, Int, ListOf, PositiveInt, Rate, Struct)

IMAGE_FILTER = Struct({"name": str, "values": ListOf(str),
                       "Name": str, "Values": ListOf(str)})

CLOUD_IMAGE = Struct({
    Required("name"): str,
    Required("username"): str,
    "image-id": str,
    "image-filters": ListOf(IMAGE_FILTER),
    **IMAGE_CONNECTION,
}, exactly_one=[("image-id", "image-filters")])


def _imds_check(data: dict) -> Iterator[vol.Invalid]:
    # Upstream refuses to load this combination: an imported image can not
    # be registered with IMDSv2 enforced.
    if data.get("imds-support") == "v2.0" and \
            data.get("import-method") == "image":
        yield vol.Invalid("imds-support 'v2.0' can not be used with "
                          "import-method 'image'", ["imds-support"])


DISKIMAGE = Struct({
    Required("name"): str,
    "username": str,
    **IMAGE_CONNECTION,
    # Upload-only keys: accepted, not used by the launcher.
    "pause": bool,
    "architecture": str,
    "ena-support": bool,
    "volume-type": str,
    "volume-size": Int,
    "iops": Int,
    "throughput": Int,
    "import-method": Choice("snapshot", "ebs-direct", "image"),
    "imds-support": Choice("v2.0", None),
    "tags": dict,
}, checks=[_imds_check])

FLEET = Struct({
    Required("instance-types"): ListOf(str),
    Required("allocation-strategy"): Choice(
        "prioritized", "price-capacity-optimized", "capacity-optimized",
        "diversified", "lowest-price"),
})


def _dedicated_check(data: dict) -> Iterator[vol.Invalid]:
    if data.get("dedicated-host") is True and data.get("use-spot") is True:
        yield vol.Invalid("dedicated-host can not be combined with use-spot",
                          ["dedicated-host"])


LABEL = Struct({
    Required("name"): str,
    "cloud-image": str,
    "diskimage": str,
    "instance-type": str,
    "fleet": FLEET,
    Required("key-name"): str,
    "ebs-optimized": bool,
    "volume-type": str,
    "volume-size": Int,
    "iops": Int,
    "throughput": Int,
    "userdata": str,
    "iam-instance-profile": Struct({"name": str, "arn": str},
                                   at_most_one=[("name", "arn")]),
    "tags": dict,
    "dynamic-tags": dict,
    "use-spot": bool,
    "imdsv2": Choice("required", "optional", None),
    "dedicated-host": bool,
}, at_most_one=[("cloud-image", "diskimage"), ("instance-type", "fleet")],
    checks=[_dedicated_check])


def _pool_az_check(data: dict) -> Iterator[vol.Invalid]:
    if "availability-zone" in data:
        return
    for index, label in common.entries(data.get("labels")):
        if label.get("dedicated-host") is True:
            yield vol.Invalid("dedicated-host requires the pool's "
                              "availability-zone",
                              ["labels", index, "dedicated-host"])


POOL = Struct({
    **POOL_COMMON,
    Required("labels"): ListOf(LABEL),
    "max-cores": Int,
    "max-ram": Int,
    "max-resources": {str: Int},
    "subnet-id": str,
    "security-group-id": str,
    "public-ipv4": bool,
    "public-ipv6": bool,
    "public-ip-address": bool,
    "host-key-checking": bool,
    "availability-zone": str,
    "use-internal-ip": bool,  # loader-only
}, checks=[_pool_az_check])

PROVIDER = Struct({
    **PROVIDER_COMMON,
    **CLOUD_PROVIDER_COMMON,
    Required("region-name"): str,
    "profile-name": str,
    "rate": Rate(),
    "batch-creates": bool,
    "max-servers": Int,
    "max-cores": Int,
    "max-ram": Int,
    "max-resources": {str: Int},
    "object-storage": Struct({Required("bucket-name"): str}),
    "image-format": Choice("raw", "ova", "vhd", "vhdx", "vmdk"),
    "image-import-timeout": PositiveInt,
    # Loader-only: defaults for every pool.
    "use-internal-ip": bool,
    "host-key-checking": bool,
    "public-ipv4": bool,
    "public-ipv6": bool,
    "cloud-images": ListOf(CLOUD_IMAGE),
    "diskimages": ListOf(DISKIMAGE),
    Required("pools"): ListOf(POOL),
})

LOADER_ONLY = (
    ("use-internal-ip",), ("host-key-checking",), ("public-ipv4",),
    ("public-ipv6",), ("pools", "*", "use-internal-ip"),
)

PROVIDER_SETTINGS = {
    "region-name": None, "profile-name": None, "batch-creates": True,
    "max-servers": UNLIMITED,
    "max-cores": UNLIMITED, "max-ram": UNLIMITED, "max-resources": {},
    "object-storage": None, "image-format": "raw",
    "image-import-timeout": None, "post-upload-hook": None,
    "use-internal-ip": False, "host-key-checking": True,
    "public-ipv4": True, "public-ipv6": False,
}

LABEL_SETTINGS = {
    "instance-type": None, "fleet": None, "key-name": None,
    "ebs-optimized": False, "volume-type": None, "volume-size": None,
    "iops": None, "throughput": None, "userdata": None,
    "iam-instance-profile": None, "tags": {}, "dynamic-tags": {},
    "use-spot": False, "imdsv2": None, "dedicated-host": False,
}

DISKIMAGE_SETTINGS = {
    "pause": False, "architecture": None, "ena-support": None,
    "volume-type": None, "volume-size": None, "iops": None,
    "throughput": None, "import-method": "snapshot", "imds-support": None,
    "tags": {},
}


def check(raw: dict, path: Path, ctx: CheckContext) -> list[Issue]:
    return common.check_cloud_provider(raw, path, ctx,
                                       label_diskimage_scope="provider")


def _pool_settings(pool: dict, provider: dict[str, Any]) -> dict[str, Any]:
    public_ipv4 = pool.get("public-ipv4", provider["public-ipv4"])
    # The deprecated alias wins when both are set, as upstream's loader.
    public_ipv4 = pool.get("public-ip-address", public_ipv4)
    return {
        "subnet-id": pool.get("subnet-id"),
        "security-group-id": pool.get("security-group-id"),
        "public-ipv4": public_ipv4,
        "public-ipv6": pool.get("public-ipv6", provider["public-ipv6"]),
        "host-key-checking": pool.get("host-key-checking",
                                      provider["host-key-checking"]),
        "use-internal-ip": pool.get("use-internal-ip",
                                    provider["use-internal-ip"]),
        "availability-zone": pool.get("availability-zone"),
    }


def _label_settings(label: dict) -> dict[str, Any]:
    settings = common.pick(label, LABEL_SETTINGS)
    # An empty iam-instance-profile mapping is accepted and means none.
    settings["iam-instance-profile"] = settings["iam-instance-profile"] or None
    return settings


def _pool(raw: dict, pool: dict, settings: dict, images: dict) -> Pool:
    labels = common.by_name(pool["labels"], lambda label: common.pool_label(
        label, images, _label_settings(label)))
    return Pool(
        name=pool["name"],
        provider_name=raw["name"],
        max_servers=common.limit(pool, "max-servers",
                                 settings["max-servers"]),
        max_cores=common.limit(pool, "max-cores", settings["max-cores"]),
        max_ram=common.limit(pool, "max-ram", settings["max-ram"]),
        max_resources={**settings["max-resources"],
                       **pool.get("max-resources", {})},
        priority=common.pool_priority(pool, raw),
        node_attributes=common.node_attributes(pool),
        labels=labels,
        settings=_pool_settings(pool, settings),
    )


def build(raw: dict, ctx: BuildContext) -> Provider:
    settings = common.pick(raw, PROVIDER_SETTINGS)
    for key in ("max-servers", "max-cores", "max-ram"):
        settings[key] = common.limit(raw, key)
    cloud_images = common.by_name(raw.get("cloud-images"), lambda ci: (
        common.cloud_image(ci, common.pick(
            ci, {"image-id": None, "image-filters": None}))))
    diskimages = common.provider_diskimages(
        raw, ctx, lambda di: common.pick(di, DISKIMAGE_SETTINGS))
    return common.cloud_provider(
        raw, cloud_images, diskimages, settings, boot_timeout=180, rate=2.0,
        pool=lambda pool, images: _pool(raw, pool, settings, images))


DRIVER = DriverSchema(name="aws", schema=PROVIDER, loader_only=LOADER_ONLY,
                      check=check, build=build)
