"""Nodepool configuration: loading, validation and value objects.

``load_config`` is what the launcher and the CLI call; ``validate_config``
is what ``nodepool config-validate`` prints from; both run exactly the same
checks (config.md §8).  Config objects are frozen dataclasses compared by
value, which is how hot reload finds the providers that changed.

This package imports nothing from ``nodepool.driver`` or
``nodepool.launcher`` and no cloud SDK; driver schemas live in
``nodepool.config.drivers`` and are found through ``nodepool.config.registry``.
"""

from nodepool.config.errors import ConfigError, ValidationResult
from nodepool.config.loader import config_mtimes, substitute_env
from nodepool.config.model import (
    UNLIMITED, CloudImage, Config, DiskImage, Label, Pool, PoolLabel,
    Provider, ProviderDiskImage, StaticNode, WebApp, ZooKeeperServer,
    ZooKeeperTLS)
from nodepool.config.driverschema import DriverSchema
from nodepool.config.registry import get_driver, register
from nodepool.config.validate import (
    config_from_dict, load_config, validate_config, validate_data)

__all__ = [
    "CloudImage", "Config", "ConfigError", "DiskImage", "DriverSchema",
    "Label", "Pool", "PoolLabel", "Provider", "ProviderDiskImage",
    "StaticNode", "UNLIMITED", "ValidationResult", "WebApp",
    "ZooKeeperServer", "ZooKeeperTLS", "config_from_dict", "config_mtimes",
    "get_driver", "load_config", "register", "substitute_env",
    "validate_config", "validate_data",
]
