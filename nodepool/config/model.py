"""Value objects of a loaded configuration.

Every class here is a frozen dataclass compared *by value*: hot reload
(config.md §9) decides which providers to restart with a plain ``==`` between
the old and the new ``Provider``, so every setting that can change a
provider's behaviour -- pools, labels, resolved images, driver settings --
lives inside the provider object, and nothing that is irrelevant to equality
(warnings, file names) does.

Mappings are plain dicts: equality is what matters, hashing is never used.
Driver-specific keys the common code does not interpret are kept in a
``settings`` mapping under their YAML names, with defaults applied, so a
driver reads ``pool.settings["subnet-id"]`` exactly as the operator wrote it.

Unlimited quotas are ``math.inf``, never a large number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

__all__ = [
    "CloudImage", "Config", "DiskImage", "Label", "Pool", "PoolLabel",
    "Provider", "ProviderDiskImage", "StaticNode", "WebApp",
    "ZooKeeperServer", "ZooKeeperTLS", "UNLIMITED",
]

UNLIMITED = math.inf


@dataclass(frozen=True)
class ZooKeeperServer:
    host: str
    port: int = 2281
    chroot: str | None = None


@dataclass(frozen=True)
class ZooKeeperTLS:
    """PEM file paths for mutual TLS (zookeeper.md §1)."""
    cert: str
    key: str
    ca: str


@dataclass(frozen=True)
class WebApp:
    port: int = 8005
    listen_address: str = "0.0.0.0"


@dataclass(frozen=True)
class Label:
    """A top-level label; ``min_ready`` <= 0 means no min-ready requests."""
    name: str
    min_ready: int = 0
    max_ready_age: int = 0


@dataclass(frozen=True)
class DiskImage:
    """A top-level (builder) diskimage with its parent chain applied.

    The launcher only uses ``name``, ``abstract``, ``username``,
    ``python_path`` and (OpenStack) ``shell_type``; builder keys are kept in
    ``settings`` untouched.
    """
    name: str
    abstract: bool = False
    parent: str | None = None
    username: str = "zuul"
    python_path: str = "auto"
    shell_type: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudImage:
    """A provider ``cloud-images`` entry (an image the cloud already has)."""
    name: str
    username: str | None = None
    connection_type: str = "ssh"
    connection_port: int = 22
    python_path: str = "auto"
    shell_type: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderDiskImage:
    """A provider ``diskimages`` entry (an upload of a builder image)."""
    name: str
    username: str | None = None
    connection_type: str = "ssh"
    connection_port: int = 22
    python_path: str = "auto"
    shell_type: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


Image = Union[CloudImage, ProviderDiskImage]


@dataclass(frozen=True)
class PoolLabel:
    """A pool label; ``image`` is the provider entry it resolves to, if any.

    ``image`` is None when the label names no image, or (OpenStack) names a
    top-level diskimage that this provider does not upload: nodes of such a
    label can never be launched, exactly as upstream.
    """
    name: str
    cloud_image: str | None = None
    diskimage: str | None = None
    image: Image | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaticNode:
    """One static host; identified by (name, username, connection_port)."""
    name: str
    labels: tuple[str, ...]
    username: str = "zuul"
    timeout: int = 5
    host_key_checking: bool = True
    host_keys: tuple[str, ...] = ()
    connection_type: str = "ssh"
    connection_port: int = 22
    shell_type: str | None = None
    python_path: str = "auto"
    max_parallel_jobs: int = 1


@dataclass(frozen=True)
class Pool:
    """A provider pool.  ``max_servers`` <= 0 disables the pool.

    ``ignore_provider_quota`` (OpenStack's ``ignore-provider-quota``):
    launch without checking the cloud's quota; the pool's own limits still
    hold and the cloud refuses what does not fit.
    """
    name: str
    provider_name: str
    max_servers: float = UNLIMITED
    max_cores: float = UNLIMITED
    max_ram: float = UNLIMITED
    max_resources: Mapping[str, int] = field(default_factory=dict)
    ignore_provider_quota: bool = False
    priority: int = 100
    node_attributes: Mapping[str, Any] | None = None
    labels: Mapping[str, PoolLabel] = field(default_factory=dict)
    nodes: tuple[StaticNode, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """A provider; ``rate`` keeps each driver's meaning (config.md §4-§6).

    AWS and Azure: requests per second; OpenStack: seconds between calls;
    static: None (as are the timeouts and retries, which static lacks).
    """
    name: str
    driver: str
    max_concurrency: int = -1
    priority: int = 100
    boot_timeout: int | None = None
    launch_timeout: int | None = None
    launch_retries: int | None = None
    rate: float | None = None
    pools: Mapping[str, Pool] = field(default_factory=dict)
    cloud_images: Mapping[str, CloudImage] = field(default_factory=dict)
    diskimages: Mapping[str, ProviderDiskImage] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """The whole effective configuration (main file + secure file)."""
    zookeeper_servers: tuple[ZooKeeperServer, ...] = ()
    zookeeper_tls: ZooKeeperTLS | None = None
    zookeeper_timeout: float = 10.0
    labels: Mapping[str, Label] = field(default_factory=dict)
    providers: Mapping[str, Provider] = field(default_factory=dict)
    diskimages: Mapping[str, DiskImage] = field(default_factory=dict)
    webapp: WebApp = field(default_factory=WebApp)
    max_hold_age: int = 0
    tenant_resource_limits: Mapping[str, Mapping[str, int]] = field(
        default_factory=dict)
    warnings: tuple[str, ...] = field(default=(), compare=False)
