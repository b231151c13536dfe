"""Quota arithmetic: how much a node costs and how much room is left.

A ``Quota`` maps resource names (``instances``, ``cores``, ``ram`` plus
driver extras such as AWS quota codes, ``volumes``, ``volume-gb``) to numbers;
a missing key means "unlimited" for limits and "0" for usage.  Nodes record
their cost in the node's ``resources`` (zookeeper.md §5), so usage can be
summed from ZooKeeper without asking the cloud.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

BASE_KEYS = ("instances", "cores", "ram")


class Quota:
    """A bag of resource amounts; math.inf (or absence) means unlimited."""

    __slots__ = ("values",)

    def __init__(self, values: Mapping[str, float] | None = None, **kw: float):
        merged = dict(values or {})
        merged.update(kw)
        self.values = {k: v for k, v in merged.items() if v is not None}

    @classmethod
    def unlimited(cls) -> "Quota":
        return cls()

    @classmethod
    def from_resources(cls, resources: Mapping[str, float] | None) -> "Quota":
        """A node's ``resources`` field (absent instances counts as 1)."""
        values = {k: v for k, v in (resources or {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        values.setdefault("instances", 1)
        return cls(values)

    @classmethod
    def total(cls, quotas: Iterable["Quota"]) -> "Quota":
        # One accumulator (not a new Quota per addition): usage sums run
        # over every node of a provider.
        acc: dict[str, float] = {}
        get = acc.get
        for q in quotas:
            for k, v in q.values.items():
                acc[k] = get(k, 0) + v
        out = cls.__new__(cls)
        out.values = acc
        return out

    def get(self, key: str, default: float = 0) -> float:
        return self.values.get(key, default)

    def __add__(self, other: "Quota") -> "Quota":
        keys = set(self.values) | set(other.values)
        return Quota({k: self.values.get(k, 0) + other.values.get(k, 0)
                      for k in keys})

    def __sub__(self, other: "Quota") -> "Quota":
        keys = set(self.values) | set(other.values)
        return Quota({k: self.values.get(k, 0) - other.values.get(k, 0)
                      for k in keys})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quota) and self.values == other.values

    def __repr__(self) -> str:
        return f"Quota({self.values!r})"

    def minimum(self, other: "Quota") -> "Quota":
        """Per key the tighter of two limits (missing = unlimited)."""
        keys = set(self.values) | set(other.values)
        return Quota({k: min(self.values.get(k, math.inf),
                             other.values.get(k, math.inf)) for k in keys})

    def fits(self, limits: "Quota", used: "Quota") -> bool:
        """True when ``used + self`` stays within ``limits`` for every key."""
        for key, need in self.values.items():
            limit = limits.values.get(key, math.inf)
            if used.values.get(key, 0) + need > limit:
                return False
        return True

    def exceeds(self, limits: "Quota") -> bool:
        """True when this amount alone is larger than ``limits`` allows."""
        return not self.fits(limits, Quota())

    def finite(self) -> dict[str, float]:
        """The keys with a finite value (what metrics may report)."""
        return {k: v for k, v in self.values.items() if math.isfinite(v)}
