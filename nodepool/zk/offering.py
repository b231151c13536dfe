"""The Offering record: ``/nodepool/offerings/<provider>:<key>``.

An *offering* is what one create call asks a cloud for: a provider, a place
(zone, subnet, region) and a size (instance type, flavor, VM size); its
``key`` is named by the provider's adapter (``Adapter.offering``), with both
parts percent-quoted in the znode name.  A record says the cloud answered a
capacity error for it and it is not to be asked again before ``until``
(epoch seconds).  ``ttl`` is the length of the last such period (it doubles
on a repeat) and ``strikes`` how many periods in a row there were.
``kind`` says what the cloud answered: ``"unavailable"`` (a capacity
error: no create call goes to the offering before ``until``) or
``"short"`` (several calls in a row started fewer instances than asked:
the offering still launches, but pools that can serve the same labels
from another offering go first -- ``nodepool.driver.offerings``).  A
record without ``kind`` is ``"unavailable"``.
``pools`` maps each pool of the provider that launches this offering to the
labels it would launch with it, so that a launcher reading the record knows
which pools and labels it blocks without knowing the provider's config.

This path is ours: upstream Nodepool and Zuul never read it, so the record
can change with this project (unknown keys are kept on rewrite).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Offering", "UNAVAILABLE", "SHORT"]

UNAVAILABLE = "unavailable"
SHORT = "short"
KINDS = (UNAVAILABLE, SHORT)


@dataclass(eq=False, kw_only=True)
class Offering:
    provider: str
    key: str
    until: float = 0.0
    ttl: float = 0.0
    strikes: int = 0
    reason: str = ""
    since: float = 0.0
    updated: float = 0.0
    launcher: str = ""
    pools: dict[str, list[str]] = field(default_factory=dict)
    kind: str = UNAVAILABLE
    # Not serialized: the znode's stat when read, and keys we do not know.
    stat: Any = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    FIELDS = ("provider", "key", "until", "ttl", "strikes", "reason",
              "since", "updated", "launcher", "pools", "kind")

    def running(self, now: float) -> bool:
        """Is the record's period still running (of either kind)?"""
        return now < self.until

    def unavailable(self, now: float) -> bool:
        """No create call may go to the offering now."""
        return self.kind == UNAVAILABLE and now < self.until

    def short(self, now: float) -> bool:
        """The offering launches, but fewer than asked per call."""
        return self.kind == SHORT and now < self.until

    def describe(self) -> str:
        """One line for logs and give-back reasons."""
        until = time.strftime("%H:%M:%S", time.localtime(self.until))
        return f"offering {self.key} {self.kind} until {until} ({self.reason})"

    def blocks(self, pool: str, label: str) -> bool:
        """Does this record name ``label`` of ``pool`` (of its provider)?"""
        return label in self.pools.get(pool, ())

    def to_json(self) -> bytes:
        data = dict(self.extra)
        data.update({name: getattr(self, name) for name in self.FIELDS})
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, stat: Any = None) -> "Offering":
        """Parse one record; ValueError names what does not fit."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for name in ("provider", "key"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"{name!r} is not a string")
        for name in ("until", "ttl", "since", "updated"):
            value = data.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name!r} is not a number")
        pools = data.get("pools", {})
        if not isinstance(pools, dict) or not all(
                isinstance(v, list) for v in pools.values()):
            raise ValueError("'pools' is not a mapping of lists")
        if data.get("kind", UNAVAILABLE) not in KINDS:
            raise ValueError(f"'kind' is not one of {', '.join(KINDS)}")
        strikes = data.get("strikes", 0)
        if isinstance(strikes, bool) or not isinstance(strikes, int):
            raise ValueError("'strikes' is not an integer")
        known = {name: data[name] for name in cls.FIELDS if name in data}
        extra = {k: v for k, v in data.items() if k not in cls.FIELDS}
        return cls(**known, stat=stat, extra=extra)
