"""What a node costs in AWS quota, and what the account allows.

EC2 limits running instances by vCPUs per instance *family group*, each
group a Service Quotas code (``L-1216C47A``: on-demand standard A, C, D,
H, I, M, R, T, Z families; spot instances have their own codes).  A node's
cost is therefore ``instances: 1``, ``cores``, ``ram`` (MiB) and
``{<quota code>: vCPUs}``.  ``cores`` is the type's *physical* core count
(``VCpuInfo.DefaultCores``: a t3.medium has 1 core and 2 vCPUs), as
upstream Nodepool counts it, so a migrating site's ``max-cores`` and
Zuul tenant ``max-cores`` limits keep their meaning; the vCPU quota code
keeps counting vCPUs, as EC2 does.  A label naming a ``volume-type`` also
costs its ``volume-size`` GiB against that type's EBS storage code (and
its ``iops`` against the IOPS code of io1/io2); EBS limits are in TiB and
converted to GiB here.  Pools compare costs with ``quota_limits()`` and
pause before the cloud refuses (behaviour 9).

Caching: instance-type facts never change and are kept forever (one
DescribeInstanceTypes per unknown type set); Service Quotas values are
kept in the driver's one TTL cache (``nodepool.driver.ttlcache``) for
``ttl`` seconds (5 min by default), so a busy launcher asks for each code
a few times an hour, not per request.

Failure story: an unknown instance type raises ``ConfigurationError`` (the
label is then not usable and requests for it are declined).  A Service
Quotas failure (no permission, API missing, throttled) is logged by the
cache and is asked again only at the next refresh (``ttl``): meanwhile the
code keeps its last value, or counts as unlimited when it never had one
-- the cloud's own quota error still aborts launches that do not fit
(behaviour 14).

Threads: any; the type table is guarded by ``_lock``, the quota values by
their cache; fetches run on the asking thread.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Iterable

from nodepool.driver import errors
from nodepool.driver.ttlcache import TtlCache

__all__ = ["instance_quota_code", "volume_quota_code", "iops_quota_code",
           "QuotaCache", "TypeInfo"]


# Family prefix → (on-demand code, spot code).  Longest prefix wins.
_FAMILIES: dict[str, tuple[str, str | None]] = {
    "standard": ("L-1216C47A", "L-34B43A08"),
    "f": ("L-74FC7D96", "L-88CF9481"),
    "g": ("L-DB2E81BA", "L-3819A6DF"),
    "vt": ("L-DB2E81BA", "L-3819A6DF"),
    "inf": ("L-1945791B", "L-B5D1601B"),
    "p": ("L-417A185B", "L-7212CCBC"),
    "x": ("L-7295265B", "L-E3A00192"),
    "u": ("L-43DA4232", None),        # high memory: no spot
    "dl": ("L-6E869C2A", "L-85EED4F7"),
    "trn": ("L-2C3B7624", "L-6B0D517C"),
    "hpc": ("L-F7808C92", None),
}
_STANDARD = set("acdhimrtz")
_MULTI = ("hpc", "inf", "trn", "dl", "vt")

# EBS storage quotas (TiB) per volume type.
_VOLUMES = {"gp2": "L-D18FCD1D", "gp3": "L-7A658B76", "io1": "L-FD252861",
            "io2": "L-09BD8365", "st1": "L-82ACEF56", "sc1": "L-17AF77E8",
            "standard": "L-9CF3C2EB"}
# EBS provisioned IOPS quotas per volume type.
_IOPS = {"io1": "L-B3A130E6", "io2": "L-8D977E7E"}
GIB_PER_TIB = 1024


def _family(instance_type: str) -> str | None:
    name = instance_type.lower()
    for prefix in _MULTI:
        if name.startswith(prefix):
            return prefix
    first = name[:1]
    if first == "u" and (name.startswith("u-") or name[1:2].isdigit()):
        return "u"
    if first in _STANDARD:
        return "standard"
    if first in _FAMILIES:
        return first
    return None


def instance_quota_code(instance_type: str, spot: bool = False
                        ) -> str | None:
    """The vCPU quota code an instance of this type counts against."""
    family = _family(instance_type)
    if family is None:
        return None
    on_demand, spot_code = _FAMILIES[family]
    return spot_code if spot else on_demand


def volume_quota_code(volume_type: str | None) -> str | None:
    return _VOLUMES.get(volume_type or "")


def iops_quota_code(volume_type: str | None) -> str | None:
    return _IOPS.get(volume_type or "")


class TypeInfo:
    """vCPUs, physical cores and memory (MiB) of one instance type."""

    __slots__ = ("vcpus", "cores", "memory")

    def __init__(self, vcpus: int, memory: int, cores: int | None = None):
        self.vcpus = vcpus
        self.cores = vcpus if cores is None else cores
        self.memory = memory

    def __repr__(self) -> str:
        return (f"TypeInfo(vcpus={self.vcpus}, cores={self.cores}, "
                f"memory={self.memory})")


class QuotaCache:
    """Instance types (forever) and service quota values (``ttl`` s).

    ``describe_types(types)`` returns DescribeInstanceTypes records;
    ``get_quota(service, code)`` returns a quota's value.  Both are
    rate-limited calls the adapter passes in.
    """

    def __init__(self, describe_types: Callable[[list[str]], list[dict]],
                 get_quota: Callable[[str, str], float], ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._describe_types = describe_types
        self._lock = threading.Lock()
        self._types: dict[str, TypeInfo] = {}
        self._unknown: set[str] = set()
        self._quotas: TtlCache[tuple[str, str], float] = TtlCache(
            "service quota", lambda key: float(get_quota(*key)), ttl,
            retry_delay=ttl, clock=clock)

    # -- instance types -------------------------------------------------------
    def types(self, names: Iterable[str]) -> dict[str, TypeInfo]:
        """Info for every known type among ``names`` (fetching once)."""
        names = set(names)
        with self._lock:
            missing = sorted(names - set(self._types) - self._unknown)
        if missing:
            self._fetch_types(missing)
        with self._lock:
            return {n: self._types[n] for n in names if n in self._types}

    def cached_type(self, name: str) -> TypeInfo | None:
        """A type's info if already known; never calls the cloud."""
        with self._lock:
            return self._types.get(name)

    def type_info(self, name: str) -> TypeInfo:
        """One type's info; ConfigurationError if AWS does not know it."""
        info = self.types([name]).get(name)
        if info is None:
            raise errors.ConfigurationError(
                f"unknown instance type {name!r}", stat_key="error.config")
        return info

    def _fetch_types(self, names: list[str]) -> None:
        try:
            records = self._describe_types(names)
        except errors.ConfigurationError:
            # One bad name fails the whole call; ask one by one to learn
            # which (rare: only when a config names a bad type).
            if len(names) == 1:
                with self._lock:
                    self._unknown.add(names[0])
                return
            for name in names:
                self._fetch_types([name])
            return
        found = {}
        for record in records:
            cpu = record["VCpuInfo"]
            # Should EC2 leave DefaultCores out, each vCPU counts as a
            # core (upstream would fail the label instead).
            found[record["InstanceType"]] = TypeInfo(
                int(cpu["DefaultVCpus"]),
                int(record["MemoryInfo"]["SizeInMiB"]),
                int(cpu["DefaultCores"]) if cpu.get("DefaultCores")
                is not None else None)
        with self._lock:
            self._types.update(found)
            self._unknown.update(set(names) - set(found))

    # -- service quotas -------------------------------------------------------
    @property
    def quota_calls(self) -> int:
        """Service Quotas values fetched so far."""
        return self._quotas.fetches

    def quota(self, service: str, code: str) -> float:
        """A quota's value (math.inf when it can not be read)."""
        try:
            return self._quotas.get((service, code))
        except Exception:       # logged by the cache; asked again at ttl
            return math.inf
