"""What a VM size costs, and what the subscription allows, per location.

Costs come from the resource SKUs API (``vCPUs``, ``MemoryGB`` and the
quota ``family`` of every VM size in the location): a node costs
``instances: 1``, ``cores: vCPUs``, ``ram: MemoryGB × 1024`` (MiB,
truncated to an integer, as upstream counts it) and ``<family>: vCPUs``
(our extra: upstream checks no family quota); a size the catalog does not
know costs ``instances: 1, cores: 0, ram: 0``, as upstream writes it.
Limits come from the compute usages API: ``cores`` (Total Regional
vCPUs), ``virtualMachines`` (→ ``instances``) and one entry per VM
family, e.g. ``standardDSv3Family``.  Keys match, so the launcher's
``fits`` checks a label against its family's vCPU quota exactly as Azure
will.

Caches (the driver's one TTL cache, ``nodepool.driver.ttlcache``): the
SKU list is large and changes rarely (kept an hour); usages are kept
``usage_ttl`` (30 s): the launcher adds up its own nodes, the limits only
have to follow quota increases.

Failure story: the cache's rule -- a failed fetch keeps the previous
answer when there is one and is tried again after ``RETRY_DELAY`` (10 s);
with none, ``SizeCatalog.size`` raises the classified error (the adapter
then costs the label as one instance) and ``UsageCache.limits`` raises
(the adapter then reports no limits: Azure's own quota errors still abort
nodes, behaviour 14).

Threads: any (the caches lock; fetches run on the asking thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from nodepool.driver.quota import Quota
from nodepool.driver.ttlcache import TtlValue

__all__ = ["SizeInfo", "SizeCatalog", "UsageCache", "parse_sku",
           "resources_of", "limits_from_usages"]


@dataclass(frozen=True)
class SizeInfo:
    name: str
    vcpus: int
    memory_mib: int
    family: str | None
    restricted: bool = False     # not offered to this subscription here


def _capabilities(sku: Mapping) -> dict[str, str]:
    return {c.get("name"): c.get("value")
            for c in sku.get("capabilities") or []}


def parse_sku(sku: Mapping, location: str) -> SizeInfo | None:
    """A VM size from one resource SKU record (None for other types)."""
    if sku.get("resourceType") != "virtualMachines" or not sku.get("name"):
        return None
    caps = _capabilities(sku)
    try:
        vcpus = int(float(caps.get("vCPUs") or 0))
        # as upstream counts it: MiB, truncated
        memory = int(float(caps.get("MemoryGB") or 0) * 1024)
    except ValueError:
        vcpus, memory = 0, 0
    restricted = any(
        r.get("type") == "Location"
        and location in [v.lower() for v in r.get("values") or []]
        for r in sku.get("restrictions") or [])
    return SizeInfo(sku["name"], vcpus, memory, sku.get("family"),
                    restricted)


def resources_of(info: SizeInfo | None) -> dict[str, float]:
    """A node's ``resources`` for a VM of this size."""
    if info is None:
        return {"instances": 1, "cores": 0, "ram": 0}
    values: dict[str, float] = {"instances": 1, "cores": info.vcpus,
                                "ram": info.memory_mib}
    if info.family:
        values[info.family] = info.vcpus
    return values


def limits_from_usages(usages: Iterable[Mapping], families: Iterable[str]
                       ) -> Quota:
    """The limits of ``cores``, ``instances`` and the given families."""
    wanted = {"cores": "cores", "virtualMachines": "instances"}
    wanted.update({f: f for f in families if f})
    values = {}
    for usage in usages:
        name = (usage.get("name") or {}).get("value")
        if name in wanted and usage.get("limit") is not None:
            values[wanted[name]] = float(usage["limit"])
    return Quota(values)


class SizeCatalog:
    """VM sizes of one location, from ``fetch_skus()`` (SKU records)."""

    def __init__(self, location: str, fetch_skus: Callable[[], list],
                 ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location.lower()
        self._cache = TtlValue(f"VM sizes of {self.location}",
                               lambda: self._parse(fetch_skus()), ttl,
                               clock=clock)

    def _parse(self, skus: list) -> dict[str, SizeInfo]:
        sizes = {}
        for sku in skus:
            info = parse_sku(sku, self.location)
            if info is not None:
                sizes[info.name.lower()] = info
        return sizes

    def load(self) -> None:
        """Fetch the catalog now unless it is fresh."""
        self._cache.get()

    def size(self, name: str) -> SizeInfo | None:
        """The size, fetching the catalog if needed; None if unknown."""
        sizes = self._cache.get()
        return sizes.get(name.lower()) if name else None  # type: ignore

    def cached(self, name: str | None) -> SizeInfo | None:
        """The size if the catalog is loaded (never fetches)."""
        sizes = self._cache.peek()
        if not sizes or not name:
            return None
        return sizes.get(name.lower())  # type: ignore[attr-defined]


class UsageCache:
    """Compute usages of one location, from ``fetch_usages()``."""

    def __init__(self, fetch_usages: Callable[[], list],
                 ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cache = TtlValue("compute usages", fetch_usages, ttl,
                               clock=clock)

    def limits(self, families: Iterable[str]) -> Quota:
        return limits_from_usages(self._cache.get(), families)  # type: ignore
