"""What a driver's configuration schema is: ``DriverSchema`` and the
contexts its checks and builders are handed.

Why a module of its own: the driver schemas (``nodepool.config.drivers``)
are built from these types, and the registry (``nodepool.config.registry``)
is built from the driver schemas.  With the types in the registry, the
registry had to import the drivers and the drivers the registry -- a
cycle, which made the registry load its drivers lazily and the import
order matter.  Here the types depend on nothing but the value objects, so
every import runs one way: registry -> drivers -> this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nodepool.config.errors import Issue, Path
from nodepool.config.model import DiskImage, Provider

__all__ = ["BuildContext", "CheckContext", "DriverSchema"]


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
