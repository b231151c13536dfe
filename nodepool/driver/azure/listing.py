"""Listing: a shared, cached list of one resource type in the resource group.

Create and delete machines wait for ARM's long-running operations by
watching the resource's ``provisioningState`` -- never by blocking on a
poller.  A hundred machines waiting at once would make a hundred GETs per
poll; instead they all read one listing per resource type (VMs, NICs,
public IPs, disks), refreshed at most every ``interval`` seconds while
anybody is waiting, and never when nobody is.

The refresh interval grows with the listing: at least ``interval``
seconds, and ``len(records) / items_per_second`` for a large resource
group, so the CPU spent parsing listings stays bounded (about a third of a
millisecond per item) however many nodes are in flight; at most
``max_interval``.

Freshness is by start time: a machine whose PUT or DELETE was answered at
``t`` asks ``snapshot(newer_than=t)`` and only accepts a listing whose
request *started* after ``t``, so it cannot mistake the state from before
its own call for the answer.  ``snapshot`` never blocks: when the listing
is too old it starts a refresh on the read pool (unless one is running or
the last one started less than ``interval`` ago) and returns None; the
machine asks again on its next step.

``get(max_age)`` is the blocking form for the cleanup worker, pool workers
and quota accounting: it joins a refresh in flight or runs one.

Failure story: a failed refresh is logged and keeps the previous records;
snapshots stay None until a refresh succeeds (machines keep waiting,
bounded by the launch timeout or their own wait limits); ``get`` raises
the classified error.

Threads: any thread may call; state is guarded by ``_lock``; the fetch
runs on the executor given (the adapter's read pool) or the caller.
"""

from __future__ import annotations

import logging

import math
import threading
import time
from concurrent.futures import Executor, Future
from typing import Callable, NamedTuple

from nodepool.driver.backoff import log_failure

__all__ = ["Listing", "Snapshot"]

log = logging.getLogger(__name__)

Records = dict[str, dict]


class Snapshot(NamedTuple):
    """Records by lower-case name and when their listing started."""

    started: float
    records: Records

    def get(self, name: str) -> dict | None:
        return self.records.get(name.lower())


class Listing:
    """Records by lower-case name, as returned by ``fetch()``."""

    def __init__(self, name: str, fetch: Callable[[], list[dict]],
                 executor: Executor, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 items_per_second: float = 100.0,
                 max_interval: float = 5.0) -> None:
        self.name = name
        self.min_interval = interval
        self.items_per_second = items_per_second
        self.max_interval = max_interval
        self._fetch = fetch
        self._executor = executor
        self._clock = clock
        self._lock = threading.Lock()
        self._records: Records | None = None
        self._started = -math.inf       # start of the listing in _records
        self._last_start = -math.inf    # start of the latest refresh
        self._future: Future | None = None
        self.refreshes = 0
        self.errors = 0

    @property
    def interval(self) -> float:
        """Seconds between refresh starts while someone is waiting."""
        size = len(self._records or ())
        return min(self.max_interval,
                   max(self.min_interval, size / self.items_per_second))

    @property
    def age(self) -> float:
        """Seconds since the current records' listing started."""
        return self._clock() - self._started

    def snapshot(self, newer_than: float) -> Snapshot | None:
        """A listing started at or after ``newer_than``, or None (a
        refresh is then under way or due soon)."""
        with self._lock:
            if self._records is not None and self._started >= newer_than:
                return Snapshot(self._started, self._records)
            if self._future is None and \
                    self._clock() - self._last_start >= self.interval:
                self._future = self._start_locked()
            return None

    def get(self, max_age: float) -> Records:
        """Records no older than ``max_age`` seconds (blocks to refresh)."""
        with self._lock:
            now = self._clock()
            if self._records is not None and now - self._started <= max_age:
                return self._records
            future = self._future
            run_here = False
            if future is None or now - self._last_start > max_age:
                future = self._future = self._start_locked(inline=True)
                run_here = True
        if run_here:
            self._run(future)
        return future.result()

    def forget(self) -> None:
        """The next snapshot or get lists again (tests, tools)."""
        with self._lock:
            self._started = -math.inf

    def _start_locked(self, inline: bool = False) -> Future:
        future: Future = Future()
        future.started = self._last_start = self._clock()  # type: ignore
        if not inline:
            try:
                self._executor.submit(self._run, future)
            except RuntimeError:   # executor shut down: provider stopping
                future.set_exception(RuntimeError("listing stopped"))
        return future

    def _run(self, future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        started = future.started  # type: ignore[attr-defined]
        try:
            items = self._fetch()
        except Exception as exc:
            log_failure(log, exc, "Listing %s failed: %s", self.name, exc)
            with self._lock:
                self.errors += 1
                if self._future is future:
                    self._future = None
            future.set_exception(exc)
            return
        records = {str(item.get("name", "")).lower(): item for item in items}
        with self._lock:
            self.refreshes += 1
            if started >= self._started:
                self._records, self._started = records, started
            if self._future is future:
                self._future = None
        future.set_result(records)
