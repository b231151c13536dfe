"""EC2-like request throttling: token buckets per region and action class.

EC2 meters API calls per account and region with token buckets: every call
takes one token from its action's *request* bucket, and RunInstances /
TerminateInstances also take one token per instance from a *resource* bucket.
A bucket holds at most ``burst`` tokens and regains ``rate`` tokens per
second.  When a bucket lacks the tokens a call needs, EC2 answers
``RequestLimitExceeded`` (HTTP 503) and takes nothing; this module decides
that, the proxy writes the answer.

Buckets (defaults from the EC2 documentation on request throttling):

====================================  =======  ===========  ==================
bucket                                burst    rate (/s)    cost
====================================  =======  ===========  ==================
``run_instances``                     5        2            1 per RunInstances
``run_instances_resource``            1000     2            MaxCount
``terminate_instances``               100      5            1 per call
``terminate_instances_resource``      1000     20           number of ids
``describe`` (Describe*/Get*/List*)   100      20           1
``mutating`` (every other action)     200      5            1
====================================  =======  ===========  ==================

All buckets of one call are checked first and only then charged, so a call
refused by its resource bucket does not drain its request bucket either.

Thread safety: one lock guards every bucket; a check is a few arithmetic
operations, so contention is negligible next to an HTTP round trip.  Time
comes from an injectable ``clock`` so unit tests never wait.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

__all__ = ["BucketSpec", "DEFAULT_BUCKETS", "TokenBucket", "Throttle",
           "bucket_costs"]


@dataclass
class BucketSpec:
    """Size and refill rate of one bucket kind; disabled = no limit."""
    burst: float
    rate: float
    enabled: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_BUCKETS: dict[str, BucketSpec] = {
    "run_instances": BucketSpec(5, 2),
    "run_instances_resource": BucketSpec(1000, 2),
    "terminate_instances": BucketSpec(100, 5),
    "terminate_instances_resource": BucketSpec(1000, 20),
    "describe": BucketSpec(100, 20),
    "mutating": BucketSpec(200, 5),
}

_NON_MUTATING_PREFIXES = ("Describe", "Get", "List")


def bucket_costs(action: str, params: dict[str, list[str]]
                 ) -> list[tuple[str, float]]:
    """The buckets an EC2 call draws from and how many tokens from each.

    ``params`` is the parsed query-protocol form (``parse_qs`` output).
    """
    if action == "RunInstances":
        count = _int_param(params, "MaxCount", 1)
        return [("run_instances", 1), ("run_instances_resource", count)]
    if action == "TerminateInstances":
        ids = sum(1 for k in params if k.startswith("InstanceId."))
        return [("terminate_instances", 1),
                ("terminate_instances_resource", max(ids, 1))]
    if action.startswith(_NON_MUTATING_PREFIXES):
        return [("describe", 1)]
    return [("mutating", 1)]


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(params[name][0])
    except (KeyError, IndexError, ValueError):
        return default


class TokenBucket:
    """A bucket that refills continuously; not thread safe on its own."""

    def __init__(self, spec: BucketSpec, now: float):
        self.spec = spec
        self.tokens = float(spec.burst)
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.spec.burst),
                          self.tokens + elapsed * self.spec.rate)
        self.updated = now

    def has(self, cost: float) -> bool:
        return self.tokens >= cost

    def take(self, cost: float) -> None:
        self.tokens -= cost


class Throttle:
    """All buckets of the fake account: ``(region, bucket name)`` -> bucket.

    >>> t = Throttle()
    >>> t.admit("us-east-1", [("run_instances", 1)])
    True
    """

    def __init__(self, specs: dict[str, BucketSpec] | None = None,
                 enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self._specs = dict(specs or DEFAULT_BUCKETS)
        self._enabled = enabled
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._enabled

    def specs(self) -> dict[str, BucketSpec]:
        with self._lock:
            return dict(self._specs)

    def configure(self, enabled: bool | None = None,
                  specs: dict[str, dict] | None = None) -> None:
        """Switch throttling on/off and change bucket specs (partial dicts
        merge into the current spec).  Changed buckets start full again."""
        with self._lock:
            if enabled is not None:
                self._enabled = bool(enabled)
            for name, changes in (specs or {}).items():
                current = self._specs.get(name, BucketSpec(100, 10))
                merged = {**current.to_dict(), **changes}
                unknown = set(merged) - {"burst", "rate", "enabled"}
                if unknown:
                    raise ValueError(f"unknown bucket fields {unknown}")
                self._specs[name] = BucketSpec(float(merged["burst"]),
                                               float(merged["rate"]),
                                               bool(merged["enabled"]))
                for key in [k for k in self._buckets if k[1] == name]:
                    del self._buckets[key]

    def refill_all(self) -> None:
        with self._lock:
            self._buckets.clear()

    def admit(self, region: str, costs: Iterable[tuple[str, float]]) -> bool:
        """Charge every bucket of a call, or none of them and return False."""
        if not self._enabled:
            return True
        with self._lock:
            now = self._clock()
            charged = []
            for name, cost in costs:
                spec = self._specs.get(name)
                if spec is None or not spec.enabled:
                    continue
                bucket = self._buckets.get((region, name))
                if bucket is None:
                    bucket = TokenBucket(spec, now)
                    self._buckets[(region, name)] = bucket
                bucket.refill(now)
                if not bucket.has(cost):
                    return False
                charged.append((bucket, cost))
            for bucket, cost in charged:
                bucket.take(cost)
            return True

    def levels(self) -> dict[str, dict[str, float]]:
        """Current tokens per region and bucket (for the stats endpoint)."""
        with self._lock:
            now = self._clock()
            out: dict[str, dict[str, float]] = {}
            for (region, name), bucket in sorted(self._buckets.items()):
                bucket.refill(now)
                out.setdefault(region, {})[name] = round(bucket.tokens, 3)
            return out
