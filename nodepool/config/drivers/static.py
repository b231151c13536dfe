"""Static provider schema and values (config.md §7).

A static pool has no ``labels`` list: its labels are the union of its nodes'
labels, and each appears as a plain ``PoolLabel`` (no image).  A node's
``labels`` and ``host-key`` may be a string (split on whitespace / a single
key) or a list.  The legacy ``ssh-port`` is a loader-only key (§8.1): used
when ``connection-port`` is absent, with a deprecation warning.

Static providers have no rate, timeouts or retries: those ``Provider``
fields are None.
"""

from __future__ import annotations

from voluptuous import Required

from nodepool.config.drivers import common
from nodepool.config.drivers.common import POOL_COMMON, PROVIDER_COMMON
from nodepool.config.driverschema import (
    BuildContext, CheckContext, DriverSchema)
from nodepool.config.errors import Issue, Path
from nodepool.config.model import Pool, PoolLabel, Provider, StaticNode
from nodepool.config.validators import (
    Int, ListOf, Port, PositiveInt, StrOrList, Struct)

NODE = Struct({
    Required("name"): str,
    Required("labels"): StrOrList,
    "username": str,
    "timeout": PositiveInt,
    "host-key-checking": bool,
    "host-key": StrOrList,
    "connection-type": str,
    "connection-port": Port,
    "ssh-port": Port,  # loader-only, deprecated
    "shell-type": str,
    "python-path": str,
    "max-parallel-jobs": Int,
})

POOL = Struct({**POOL_COMMON, "nodes": ListOf(NODE)})

PROVIDER = Struct({**PROVIDER_COMMON, Required("pools"): ListOf(POOL)})

LOADER_ONLY = (("pools", "*", "nodes", "*", "ssh-port"),)
NOTES = {"ssh-port": "deprecated, use connection-port"}


def _node_labels(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(value)


def check(raw: dict, path: Path, ctx: CheckContext) -> list[Issue]:
    issues: list[Issue] = []
    for pindex, pool in common.entries(raw.get("pools")):
        for nindex, node in common.entries(pool.get("nodes")):
            npath = path + ("pools", pindex, "nodes", nindex, "labels")
            labels = node.get("labels")
            if isinstance(labels, str):
                for name in labels.split():
                    issues += common.check_label_defined(name, npath, ctx)
            elif isinstance(labels, list):
                for lindex, name in enumerate(labels):
                    issues += common.check_label_defined(
                        name, npath + (lindex,), ctx)
    return issues


def _node(raw: dict) -> StaticNode:
    host_keys = raw.get("host-key", [])
    if isinstance(host_keys, str):
        host_keys = [host_keys]
    port = raw.get("connection-port", raw.get("ssh-port", 22))
    return StaticNode(
        name=raw["name"],
        labels=_node_labels(raw["labels"]),
        username=raw.get("username", "zuul"),
        timeout=int(raw.get("timeout", 5)),
        host_key_checking=raw.get("host-key-checking", True),
        host_keys=tuple(host_keys),
        connection_type=raw.get("connection-type", "ssh"),
        connection_port=int(port),
        shell_type=raw.get("shell-type"),
        python_path=raw.get("python-path", "auto"),
        max_parallel_jobs=int(raw.get("max-parallel-jobs", 1)),
    )


def _pool(raw: dict, pool: dict) -> Pool:
    nodes = tuple(_node(node) for node in pool.get("nodes", []))
    labels: dict[str, PoolLabel] = {}
    for node in nodes:
        for name in node.labels:
            labels.setdefault(name, PoolLabel(name=name))
    return Pool(
        name=pool["name"], provider_name=raw["name"],
        max_servers=common.limit(pool, "max-servers"),
        priority=common.pool_priority(pool, raw),
        node_attributes=common.node_attributes(pool),
        labels=labels, nodes=nodes)


def build(raw: dict, ctx: BuildContext) -> Provider:
    return Provider(**common.provider_base(raw),
                    pools=common.by_name(raw["pools"],
                                         lambda pool: _pool(raw, pool)))


DRIVER = DriverSchema(name="static", schema=PROVIDER, loader_only=LOADER_ONLY,
                      check=check, build=build, loader_only_notes=NOTES)
