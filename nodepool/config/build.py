"""Turning validated data into a ``Config`` value.

Only called once validation found no errors, so every key has the type the
schema promised; defaults of config.md §2 are applied here.  Duplicate
labels, providers and tenants are not errors (§8.2 item 3): a later entry
replaces an earlier one of the same name.
"""

from __future__ import annotations

from typing import Any, Mapping

from nodepool.config.diskimages import resolve_diskimages
from nodepool.config.driverschema import BuildContext
from nodepool.config.model import (
    Config, Label, Provider, WebApp, ZooKeeperServer, ZooKeeperTLS)
from nodepool.config.registry import get_driver

__all__ = ["build_config", "TENANT_RESOURCE_KEYS"]

# Tenant limit keys and the node ``resources`` keys they limit.
TENANT_RESOURCE_KEYS = {
    "max-servers": "instances",
    "max-cores": "cores",
    "max-ram": "ram",
    "max-volumes": "volumes",
    "max-volume-gb": "volume-gb",
}


def _zookeeper_servers(raw: list[dict]) -> tuple[ZooKeeperServer, ...]:
    return tuple(ZooKeeperServer(host=server["host"],
                                 port=int(server.get("port", 2281)),
                                 chroot=server.get("chroot"))
                 for server in raw)


def _tenant_limits(raw: list[dict]) -> dict[str, dict[str, int]]:
    limits: dict[str, dict[str, int]] = {}
    for entry in raw:
        limits[entry["tenant-name"]] = {
            TENANT_RESOURCE_KEYS.get(key, key): int(value)
            for key, value in entry.items() if key != "tenant-name"}
    return limits


def _providers(raw: list[dict], ctx: BuildContext) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for entry in raw:
        driver = get_driver(entry.get("driver", "openstack"))
        assert driver is not None, "validated before building"
        providers[entry["name"]] = driver.build(entry, ctx)
    return providers


def build_config(data: Mapping[str, Any],
                 secure_env: Mapping[str, Mapping[str, str]],
                 warnings: tuple[str, ...] = ()) -> Config:
    """``data`` is the main file with the secure overrides applied."""
    diskimages = resolve_diskimages(data.get("diskimages", []), secure_env)
    tls = data.get("zookeeper-tls")
    webapp = data.get("webapp", {})
    max_hold_age = int(data.get("max-hold-age", 0))
    return Config(
        zookeeper_servers=_zookeeper_servers(
            data.get("zookeeper-servers", [])),
        zookeeper_tls=ZooKeeperTLS(**tls) if tls is not None else None,
        zookeeper_timeout=float(data.get("zookeeper-timeout", 10.0)),
        labels={label["name"]: Label(
            name=label["name"],
            min_ready=int(label.get("min-ready", 0)),
            max_ready_age=int(label.get("max-ready-age", 0)))
            for label in data.get("labels", [])},
        providers=_providers(data.get("providers", []),
                             BuildContext(diskimages=diskimages)),
        diskimages=diskimages,
        webapp=WebApp(port=int(webapp.get("port", 8005)),
                      listen_address=webapp.get("listen_address",
                                                "0.0.0.0")),
        max_hold_age=max(max_hold_age, 0),
        tenant_resource_limits=_tenant_limits(
            data.get("tenant-resource-limits", [])),
        warnings=warnings,
    )
