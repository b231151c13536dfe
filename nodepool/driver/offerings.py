"""Offerings a cloud has no capacity for, remembered and shared.

When a create call fails with a capacity error (``CapacityError``: EC2's
``InsufficientInstanceCapacity``, Nova's "No valid host was found",
Azure's ``AllocationFailed``, ...), retrying the same zone and size at once
only fails again.  ``Offerings`` records the offering -- what the adapter
names with ``Adapter.offering(pool, label)`` -- as unavailable in ZooKeeper
(``/nodepool/offerings``, see ``nodepool.zk.offering``):

- for ``BASE_TTL`` (3 minutes) the first time; a capacity error after that
  period ended (a *repeat*) doubles the period, up to ``MAX_TTL`` (30
  minutes); errors while the period runs (the rest of a burst) change
  nothing;
- a successful launch of the offering deletes the record (the next error
  starts again at ``BASE_TTL``);
- the record lives in ZooKeeper, so every launcher on the ensemble skips
  the offering from the next notification on, and it survives a restart.

While an offering is unavailable no create call goes to it: pool workers
do not take requests whose labels need it (another pool or provider that
serves the label takes them, or they wait, never failed), and a request
already taken gives it back when its replacement node would need it.

Threads: any.  Reads come from the watch cache; each write is one
conditional ZooKeeper call, retried a few times on a concurrent change.

Failure story: ZooKeeper trouble while recording is logged (one line) and
forgotten -- the next capacity error records it again; nothing is lost but
a few seconds of skipping.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable, Iterable, Mapping, Protocol

from nodepool.zk.offering import Offering

__all__ = ["Offerings", "BASE_TTL", "MAX_TTL"]

BASE_TTL = 180.0
MAX_TTL = 1800.0
WRITE_ATTEMPTS = 5

log = logging.getLogger("nodepool.driver.offerings")


class OfferingRecords(Protocol):
    """What ``Offerings`` needs of the ZooKeeper facade."""

    def get_offering(self, provider: str, key: str,
                     cached: bool = True) -> Offering | None: ...

    def put_offering(self, offering: Offering) -> bool: ...

    def delete_offering(self, provider: str, key: str) -> None: ...

    def iter_offerings(self, provider: str | None = None,
                       cached: bool = True) -> Iterable[Offering]: ...


class Offerings:
    """The offering records of one provider (``provider`` is its name)."""

    def __init__(self, records: OfferingRecords, provider: str,
                 clock: Callable[[], float] = time.time,
                 base_ttl: float = BASE_TTL, max_ttl: float = MAX_TTL):
        self.records = records
        self.provider = provider
        self.clock = clock
        self.base_ttl = base_ttl
        self.max_ttl = max_ttl
        self.hostname = socket.gethostname()

    def unavailable(self, key: str | None) -> Offering | None:
        """The record that makes ``key`` unavailable now, or None."""
        if key is None:
            return None
        record = self.records.get_offering(self.provider, key)
        if record is not None and record.unavailable(self.clock()):
            return record
        return None

    def capacity_error(self, key: str | None, reason: str,
                       pools: Mapping[str, list[str]]) -> Offering | None:
        """Record a capacity error for ``key``; returns the record written
        (None if nothing was, e.g. the period was already running)."""
        if key is None:
            return None
        if self.unavailable(key) is not None:
            return None               # known from the cache: no round trip
        for _ in range(WRITE_ATTEMPTS):
            now = self.clock()
            record = self.records.get_offering(self.provider, key,
                                               cached=False)
            if record is not None and record.unavailable(now):
                return None           # the rest of a burst: nothing new
            if record is None:
                record = Offering(provider=self.provider, key=key,
                                  ttl=self.base_ttl, since=now)
            else:
                record.ttl = min(self.max_ttl,
                                 max(self.base_ttl, record.ttl * 2))
            record.strikes += 1
            record.until = now + record.ttl
            record.reason = reason[:500]
            record.updated = now
            record.launcher = self.hostname
            record.pools = {pool: sorted(labels)
                            for pool, labels in pools.items()}
            if self.records.put_offering(record):
                log.warning("Offering %s of provider %s unavailable for "
                            "%.0f s (strike %d): %s", key, self.provider,
                            record.ttl, record.strikes, record.reason)
                return record
        return None

    def succeeded(self, key: str | None) -> None:
        """A launch of ``key`` worked: forget its record, if any."""
        if key is None:
            return
        if self.records.get_offering(self.provider, key) is None:
            return
        self.records.delete_offering(self.provider, key)
        log.info("Offering %s of provider %s is available again", key,
                 self.provider)

    def blocked(self, pool: str, label: str) -> Offering | None:
        """A running record of this provider that names ``label`` of
        ``pool`` (for pools of other launchers, whose config we may not
        have: the record itself says what it blocks)."""
        now = self.clock()
        for record in self.records.iter_offerings(self.provider):
            if record.unavailable(now) and record.blocks(pool, label):
                return record
        return None

    def current(self) -> list[Offering]:
        """Running records of this provider (for status and metrics)."""
        now = self.clock()
        return [r for r in self.records.iter_offerings(self.provider)
                if r.unavailable(now)]
