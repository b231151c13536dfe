"""Driver schemas, keyed by driver name.

The common validation code knows nothing about AWS, OpenStack, Azure or
static hosts: it looks the provider's ``driver`` up here and gets back a
``DriverSchema`` (``nodepool.config.driverschema``) that validates the
provider entry, runs the driver's cross-reference and load checks, and
builds the ``Provider`` value.  The table starts with the built-in schemas
of ``nodepool.config.drivers``; ``register`` adds more.  This package
never imports cloud SDKs or ``nodepool.driver``.
"""

from __future__ import annotations

from nodepool.config.drivers import BUILTIN
from nodepool.config.driverschema import DriverSchema

__all__ = ["driver_names", "get_driver", "register"]

_DRIVERS: dict[str, DriverSchema] = {d.name: d for d in BUILTIN}


def register(driver: DriverSchema) -> None:
    """Add (or replace) the schema for ``driver.name``."""
    _DRIVERS[driver.name] = driver


def get_driver(name: str) -> DriverSchema | None:
    return _DRIVERS.get(name)


def driver_names() -> list[str]:
    return sorted(_DRIVERS)
