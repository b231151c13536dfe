"""Driver schemas, keyed by driver name.

The common validation code knows nothing about AWS, OpenStack, Azure or
static hosts: it looks the provider's ``driver`` up here and gets back a
``DriverSchema`` that validates the provider entry, runs the driver's
cross-reference and load checks, and builds the ``Provider`` value.  The
built-in drivers register themselves when ``nodepool.config.drivers`` is
imported; this package never imports cloud SDKs or ``nodepool.driver``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nodepool.config.errors import Issue, Path
from nodepool.config.model import DiskImage, Provider

__all__ = ["BuildContext", "CheckContext", "DriverSchema", "driver_names",
           "get_driver", "register"]


@dataclass(frozen=True)
class CheckContext:
    """What cross-reference checks need from the rest of the file.

    Built from the raw data even when parts of it failed the schema, so that
    reference errors are reported together with type errors.
    """
    # None when top-level ``labels`` is malformed: every label reference
    # would then be reported as undefined, which only buries the real error.
    labels: frozenset[str] | None = frozenset()
    diskimages: frozenset[str] = frozenset()  # every top-level name
    abstract_diskimages: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuildContext:
    """Resolved top-level diskimages, for inherited ``username`` etc."""
    diskimages: Mapping[str, DiskImage] = field(default_factory=dict)


@dataclass(frozen=True)
class DriverSchema:
    """Everything the loader needs to know about one driver.

    ``schema`` validates one provider entry (common keys included);
    ``loader_only`` lists key patterns ("*" = every list entry) that are
    accepted with a warning (config.md §8.1); ``check`` returns reference and
    load-check issues for a (possibly invalid) raw entry; ``build`` turns a
    valid entry into a ``Provider``.
    """
    name: str
    schema: Any
    loader_only: tuple[tuple[str, ...], ...]
    check: Callable[[dict, Path, CheckContext], list[Issue]]
    build: Callable[[dict, BuildContext], Provider]
    loader_only_notes: Mapping[str, str] = field(default_factory=dict)


_DRIVERS: dict[str, DriverSchema] = {}


def register(driver: DriverSchema) -> None:
    """Add (or replace) the schema for ``driver.name``."""
    _DRIVERS[driver.name] = driver


def get_driver(name: str) -> DriverSchema | None:
    _load_builtins()
    return _DRIVERS.get(name)


def driver_names() -> list[str]:
    _load_builtins()
    return sorted(_DRIVERS)


def _load_builtins() -> None:
    # Imported lazily: the driver modules import this module to register.
    import nodepool.config.drivers  # noqa: F401
