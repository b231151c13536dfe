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

A softer signal: an offering whose calls the cloud answers partially,
leaving several launches in a row unstarted (``SHORT_AFTER`` of
``nodepool.driver.callsize``, the AWS create batcher's sizing: EC2
"launches as many as it can" when a zone runs short), is recorded as
*short* for ``BASE_TTL``.  It still launches -- what a partial answer
started is a success, and the rest is asked for again at once -- but
while the record runs, a pool whose offering is short leaves requests to
another pool (of any launcher) that serves the same labels from an
offering that is neither short nor unavailable.  The first fully answered
call of several launches deletes the record; so does a capacity error,
which replaces it with an *unavailable* one.  A launch that succeeds does
not delete a short record (a short zone's launches succeed, one by one).

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

from nodepool.zk.offering import SHORT, UNAVAILABLE, Offering

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
            if record is None or record.kind != UNAVAILABLE:
                # (a short record is replaced: this is the first strike)
                stat = None if record is None else record.stat
                record = Offering(provider=self.provider, key=key,
                                  ttl=self.base_ttl, since=now, stat=stat)
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

    def short(self, key: str | None, reason: str,
              pools: Mapping[str, list[str]]) -> Offering | None:
        """Record that the cloud keeps answering calls for ``key`` with
        fewer instances than asked; returns the record written (None if
        a record of either kind runs already)."""
        if key is None:
            return None
        for _ in range(WRITE_ATTEMPTS):
            now = self.clock()
            record = self.records.get_offering(self.provider, key,
                                               cached=False)
            if record is not None and record.running(now):
                return None
            record = Offering(provider=self.provider, key=key, kind=SHORT,
                              ttl=self.base_ttl, since=now, until=now +
                              self.base_ttl, reason=reason[:500],
                              updated=now, launcher=self.hostname,
                              pools={pool: sorted(labels)
                                     for pool, labels in pools.items()},
                              stat=None if record is None else record.stat)
            if self.records.put_offering(record):
                log.warning("Offering %s of provider %s is short of "
                            "capacity for %.0f s (other pools serving its "
                            "labels go first): %s", key, self.provider,
                            record.ttl, record.reason)
                return record
        return None

    def ample(self, key: str | None) -> None:
        """A call of several launches for ``key`` was answered in full:
        forget a short record, if any."""
        record = None if key is None else \
            self.records.get_offering(self.provider, key)
        if record is None or record.kind != SHORT:
            return
        self.records.delete_offering(self.provider, key)
        log.info("Offering %s of provider %s answers in full again", key,
                 self.provider)

    def succeeded(self, key: str | None) -> None:
        """A launch of ``key`` worked: forget its unavailable record, if
        any (a short one stays: see the module docstring)."""
        if key is None:
            return
        record = self.records.get_offering(self.provider, key)
        if record is None or record.kind != UNAVAILABLE:
            return
        self.records.delete_offering(self.provider, key)
        log.info("Offering %s of provider %s is available again", key,
                 self.provider)

    def short_record(self, key: str | None) -> Offering | None:
        """The running short record of ``key``, or None."""
        if key is None:
            return None
        record = self.records.get_offering(self.provider, key)
        if record is not None and record.short(self.clock()):
            return record
        return None

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
        """Running records of this provider, of both kinds (for status and
        metrics)."""
        now = self.clock()
        return [r for r in self.records.iter_offerings(self.provider)
                if r.running(now)]
