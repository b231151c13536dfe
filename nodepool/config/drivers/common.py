"""Pieces shared by the driver schemas (config.md §3).

Schema fragments for the keys every provider, pool and image has; tolerant
walkers over raw (possibly invalid) data for the cross-reference checks of
§8.2, which must still report what they can when other keys have type
errors; and builders for the common parts of the value objects.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterator, Mapping

from voluptuous import Required

from nodepool.config.driverschema import BuildContext, CheckContext
from nodepool.config.errors import Issue, Path
from nodepool.config.model import (CloudImage, Pool, PoolLabel, Provider,
                                   ProviderDiskImage)
from nodepool.config.validators import Int, Port, PositiveInt

UNLIMITED = math.inf

PROVIDER_COMMON = {
    Required("name"): str,
    "driver": str,
    "max-concurrency": Int,
    "priority": Int,
}

CLOUD_PROVIDER_COMMON = {
    "boot-timeout": PositiveInt,
    "launch-timeout": PositiveInt,
    "launch-retries": Int,
    "post-upload-hook": str,  # image upload only
}

POOL_COMMON = {
    Required("name"): str,
    "max-servers": Int,
    "priority": Int,
    "node-attributes": dict,
}

IMAGE_CONNECTION = {
    "connection-type": str,
    "connection-port": Port,
    "python-path": str,
    "shell-type": str,
}


# -- tolerant walkers over raw data -----------------------------------------

def entries(value: Any) -> Iterator[tuple[int, dict]]:
    """(index, entry) for each mapping entry of a list; skips anything else."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def names(value: Any) -> set[str]:
    """The string ``name`` of every mapping entry of a list."""
    return {item["name"] for _, item in entries(value)
            if isinstance(item.get("name"), str)}


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def provider_label(raw: dict) -> str:
    return text(raw.get("name")) or "<unnamed>"


def check_label_defined(name: Any, path: Path, ctx: CheckContext
                        ) -> list[Issue]:
    if ctx.labels is None:
        return []
    if isinstance(name, str) and name not in ctx.labels:
        return [Issue(path, f"label '{name}' is not defined in top-level "
                            "labels")]
    return []


def check_toplevel_diskimage(name: Any, path: Path, ctx: CheckContext
                             ) -> list[Issue]:
    """A reference to a non-abstract top-level diskimage."""
    if not isinstance(name, str):
        return []
    if name not in ctx.diskimages:
        return [Issue(path, f"diskimage '{name}' is not defined in "
                            "top-level diskimages")]
    if name in ctx.abstract_diskimages:
        return [Issue(path, f"diskimage '{name}' is abstract and can not "
                            "be used by a provider")]
    return []


def check_cloud_provider(raw: dict, path: Path, ctx: CheckContext, *,
                         label_diskimage_scope: str) -> list[Issue]:
    """§8.2 items 1 and 2 for aws/openstack/azure.

    ``label_diskimage_scope`` is ``"provider"`` when a label's ``diskimage``
    must name an entry of the provider's ``diskimages`` (AWS, Azure) and
    ``"top-level"`` when it names a top-level diskimage (OpenStack).
    """
    issues: list[Issue] = []
    pname = provider_label(raw)
    for index, entry in entries(raw.get("diskimages")):
        issues += check_toplevel_diskimage(
            entry.get("name"), path + ("diskimages", index, "name"), ctx)
    cloud_images = names(raw.get("cloud-images"))
    provider_diskimages = names(raw.get("diskimages"))
    for pindex, pool in entries(raw.get("pools")):
        for lindex, label in entries(pool.get("labels")):
            lpath = path + ("pools", pindex, "labels", lindex)
            issues += check_label_defined(label.get("name"),
                                          lpath + ("name",), ctx)
            image = text(label.get("cloud-image"))
            if image is not None and image not in cloud_images:
                issues.append(Issue(
                    lpath + ("cloud-image",),
                    f"cloud-image '{image}' is not defined in provider "
                    f"'{pname}'"))
            disk = text(label.get("diskimage"))
            if disk is None:
                continue
            if label_diskimage_scope == "top-level":
                issues += check_toplevel_diskimage(
                    disk, lpath + ("diskimage",), ctx)
            elif disk not in provider_diskimages:
                issues.append(Issue(
                    lpath + ("diskimage",),
                    f"diskimage '{disk}' is not defined in provider "
                    f"'{pname}'"))
    return issues


# -- builders ---------------------------------------------------------------

def pick(raw: Mapping[str, Any], defaults: Mapping[str, Any]
         ) -> dict[str, Any]:
    """``defaults`` keys with the raw value when set (deep-copied)."""
    return {key: copy.deepcopy(raw.get(key, default))
            for key, default in defaults.items()}


def limit(raw: Mapping[str, Any], key: str, default: float = UNLIMITED
          ) -> float:
    value = raw.get(key)
    return default if value is None else int(value)


def connection(raw: Mapping[str, Any]) -> tuple[str, int]:
    ctype = raw.get("connection-type", "ssh")
    default_port = 5986 if ctype == "winrm" else 22
    return ctype, int(raw.get("connection-port", default_port))


def cloud_image(raw: Mapping[str, Any], settings: Mapping[str, Any],
                username: str | None = None) -> CloudImage:
    ctype, port = connection(raw)
    return CloudImage(
        name=raw["name"],
        username=raw.get("username", username),
        connection_type=ctype,
        connection_port=port,
        python_path=raw.get("python-path", "auto"),
        shell_type=raw.get("shell-type"),
        settings=dict(settings),
    )


def provider_diskimage(raw: Mapping[str, Any], settings: Mapping[str, Any],
                       *, username: str | None,
                       python_path: str | None = None,
                       shell_type: str | None = None) -> ProviderDiskImage:
    """``python_path``/``shell_type``: the top-level diskimage's values for
    drivers that take them from there (OpenStack), else the entry's own."""
    ctype, port = connection(raw)
    return ProviderDiskImage(
        name=raw["name"],
        username=username,
        connection_type=ctype,
        connection_port=port,
        python_path=python_path or raw.get("python-path", "auto"),
        shell_type=shell_type or raw.get("shell-type"),
        settings=dict(settings),
    )


def pool_label(label: Mapping[str, Any], images: Mapping[str, Mapping],
               settings: Mapping[str, Any], *,
               diskimage_first: bool = False) -> PoolLabel:
    """A cloud pool's label: its image is the provider's ``cloud-image``
    entry it names, else its ``diskimage`` one (``images``: ``cloud`` and
    ``disk`` entries by name); with ``diskimage_first`` a label naming
    both boots the diskimage, as upstream's Azure driver does."""
    cloud, diskimage = label.get("cloud-image"), label.get("diskimage")
    if diskimage_first:
        image = images["disk"].get(diskimage) if diskimage \
            else images["cloud"].get(cloud)
    else:
        image = images["cloud"].get(cloud) if cloud \
            else images["disk"].get(diskimage)
    return PoolLabel(name=label["name"], cloud_image=cloud,
                     diskimage=diskimage, image=image, settings=settings)


def provider_diskimages(raw: Mapping[str, Any], ctx: BuildContext,
                        settings: Callable[[dict], Mapping[str, Any]]
                        ) -> dict[str, ProviderDiskImage]:
    """The provider's ``diskimages`` by name, each with ``settings(entry)``;
    an entry without ``username`` takes its top-level diskimage's."""
    return by_name(raw.get("diskimages"), lambda entry: provider_diskimage(
        entry, settings(entry), username=entry.get(
            "username", ctx.diskimages[entry["name"]].username)))


def pool_priority(pool: Mapping[str, Any], provider: Mapping[str, Any]
                  ) -> int:
    return int(pool.get("priority", provider.get("priority", 100)))


def node_attributes(pool: Mapping[str, Any]) -> dict | None:
    value = pool.get("node-attributes")
    return copy.deepcopy(value) if value is not None else None


def provider_base(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``Provider`` common to every driver."""
    return {
        "name": raw["name"],
        "driver": raw.get("driver", "openstack"),
        "max_concurrency": int(raw.get("max-concurrency", -1)),
        "priority": int(raw.get("priority", 100)),
    }


def cloud_timeouts(raw: Mapping[str, Any], boot_timeout: int
                   ) -> dict[str, Any]:
    return {
        "boot_timeout": int(raw.get("boot-timeout", boot_timeout)),
        "launch_timeout": int(raw.get("launch-timeout", 3600)),
        "launch_retries": int(raw.get("launch-retries", 3)),
    }


def cloud_provider(raw: Mapping[str, Any], cloud_images: dict,
                   diskimages: dict, settings: dict[str, Any], *,
                   boot_timeout: int, rate: float,
                   pool: Callable[[dict, dict], Pool]) -> Provider:
    """A cloud driver's ``Provider``: ``pool(raw_pool, images)`` builds
    each pool (``images``: the ``cloud`` and ``disk`` entries by name);
    ``boot_timeout`` and ``rate`` are the driver's defaults."""
    images = {"cloud": cloud_images, "disk": diskimages}
    return Provider(
        **provider_base(raw), **cloud_timeouts(raw, boot_timeout),
        rate=float(raw.get("rate", rate)),
        pools=by_name(raw.get("pools"), lambda p: pool(p, images)),
        cloud_images=cloud_images, diskimages=diskimages,
        settings=settings)


def by_name(items: list, make) -> dict:
    """Entries by name.  Pools and labels are unique by then
    (``nodepool.config.names``); of cloud-images or provider diskimages of
    one name, the later entry replaces the earlier one, as upstream."""
    result: dict = {}
    for raw in items or []:
        value = make(raw)
        result[value.name] = value
    return result
