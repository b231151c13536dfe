"""vCPU quota enforcement: EC2's "running instances" quotas, kept by the proxy.

With the flag ``enforce_quotas`` on, RunInstances is checked against the
Service Quotas value of the instance type's class (L-1216C47A for on-demand
standard types, L-34B43A08 for their spot requests, ...): when not even
MinCount instances fit, the call fails with ``VcpuLimitExceeded`` (HTTP
400) like EC2; when fewer than MaxCount fit, the call is cut to what fits,
as EC2 starts "as many as possible".  The quota value can be changed at
run time, exactly as a launcher would see it through GetServiceQuota.

What counts as in use: instances this proxy saw started by RunInstances
and not yet named in a TerminateInstances call, per region.  Instances
made another way (CreateFleet, direct calls to moto) are not counted, and
stopping an instance does not free its vCPUs here.  ``/_fake/reset``
empties the ledger together with moto.

Races: a call reserves its vCPUs before it goes to moto, and the
reservation turns into instance ids (or is released) when moto answers,
so two parallel launches can never both take the last free vCPUs.  One
lock guards the ledger.

vCPUs per type come from moto's own instance type table (loaded once,
~0.1 s); an unknown type counts 1 vCPU, and moto then refuses it anyway.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections import Counter

__all__ = ["Ledger", "quota_code", "vcpus"]

# Longest prefixes first: "hpc6a" is HPC, not standard "h"; "inf2" is Inf.
_CLASSES: list[tuple[str, str, str | None]] = [
    # (family prefix, on-demand code, spot code)
    ("u-", "L-43DA4232", None),
    ("hpc", "L-F7808C92", None),
    ("inf", "L-1945791B", "L-B5D1601B"),
    ("trn", "L-2C3B7624", "L-6B0D517C"),
    ("dl", "L-6E869C2A", "L-85EED4F7"),
    ("vt", "L-DB2E81BA", "L-3819A6DF"),
    ("g", "L-DB2E81BA", "L-3819A6DF"),
    ("p", "L-417A185B", "L-7212CCBC"),
    ("x", "L-7295265B", "L-E3A00192"),
    ("f", "L-74FC7D96", "L-88CF9481"),
]
_STANDARD = ("L-1216C47A", "L-34B43A08")
_STANDARD_LETTERS = set("acdhimrtz")

_vcpu_table: dict[str, int] | None = None
_table_lock = threading.Lock()


def quota_code(instance_type: str, spot: bool = False) -> str | None:
    """The ``ec2`` quota code that counts this type's vCPUs, or None."""
    family = instance_type.split(".", 1)[0].lower()
    for prefix, on_demand, spot_code in _CLASSES:
        if family.startswith(prefix):
            return spot_code if spot else on_demand
    if family[:1] in _STANDARD_LETTERS and not family.startswith("mac"):
        return _STANDARD[1] if spot else _STANDARD[0]
    return None


def vcpus(instance_type: str) -> int:
    global _vcpu_table
    with _table_lock:
        if _vcpu_table is None:
            _vcpu_table = _load_vcpus()
    return _vcpu_table.get(instance_type, 1)


def _load_vcpus() -> dict[str, int]:
    import moto
    path = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources",
                        "instance_types.json.gz")
    try:
        with gzip.open(path) as f:
            types = json.load(f)
    except OSError:
        return {}
    return {name: int(info.get("VCpuInfo", {}).get("DefaultVCpus", 1))
            for name, info in types.items()}


class Ledger:
    """vCPUs in use per (region, quota code), plus who holds them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, tuple[str, str, int]] = {}
        self._reserved: Counter[tuple[str, str]] = Counter()

    def _used(self, region: str, code: str) -> int:
        held = sum(n for r, c, n in self._instances.values()
                   if r == region and c == code)
        return held + self._reserved[(region, code)]

    def reserve(self, region: str, code: str, per_instance: int,
                wanted: int, limit: float) -> int:
        """Reserve room for up to ``wanted`` instances; returns how many."""
        with self._lock:
            free = limit - self._used(region, code)
            count = max(0, min(wanted, int(free // max(per_instance, 1))))
            self._reserved[(region, code)] += count * per_instance
            return count

    def settle(self, region: str, code: str, per_instance: int,
               reserved: int, instance_ids: list[str]) -> None:
        """Turn a reservation into the instances moto really started."""
        with self._lock:
            self._reserved[(region, code)] -= reserved * per_instance
            for instance_id in instance_ids:
                self._instances[instance_id] = (region, code, per_instance)

    def release(self, instance_ids: list[str]) -> None:
        with self._lock:
            for instance_id in instance_ids:
                self._instances.pop(instance_id, None)

    def clear(self) -> None:
        with self._lock:
            self._instances.clear()
            self._reserved.clear()

    def usage(self) -> dict[str, dict[str, int]]:
        """``{region: {quota code: vCPUs in use}}`` for the stats."""
        with self._lock:
            out: dict[str, Counter[str]] = {}
            for region, code, n in self._instances.values():
                out.setdefault(region, Counter())[code] += n
            return {r: dict(c) for r, c in out.items()}
