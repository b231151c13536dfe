"""CreateBatcher: launches with the same specification share one call.

Each create machine ``add()``s its launch under a key (``params.batch_key``:
pool, label, image, zone) and gets back a future for its own instance.
Launches of one key are collected until ``window`` seconds pass without a
new one (tens of ms), the oldest has waited ``max_wait`` (bounded, < 1 s),
or ``max_items`` are queued; the group is then handed to the create pool.

The pool worker first takes a slot from the rate limiter and only *then*
takes the launches of its key -- everything that arrived while it waited
for its turn goes into the same call.  So under a limit of 2 calls/s, 100
launches arriving within a second need a handful of RunInstances calls
instead of 100, while a lone launch still leaves within ``window``.  Only
one group per key waits on the limiter at a time; calls of the same key
may still overlap in flight, up to the pool's size.

Failure story: ``send(items)`` returns one outcome per item, a result or
an exception instance (partial fulfilment gives the unmapped items a
retryable error); if it raises, every item of the call gets that error.
Launches cancelled before their group is sent (an abandoned attempt) are
left out.  ``stop()`` cancels every queued launch, so nothing is created
after the provider stopped; calls already sent complete normally.

Threads: one, ``<provider>-create-batcher``, only schedules; the calls run
on the create pool's workers.  All state is under one condition variable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, NamedTuple, Sequence

from nodepool.driver.createpool import CreatePool
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["CreateBatcher", "CreateBatcherStats"]

log = logging.getLogger(__name__)


@dataclass
class CreateBatcherStats:
    calls: int = 0          # send() calls made
    items: int = 0          # launches in those calls
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=200))


class _Entry(NamedTuple):
    item: Any
    future: Future
    added: float


class _Group:
    __slots__ = ("entries", "last_add", "scheduled")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.last_add = 0.0
        self.scheduled = False


class CreateBatcher:
    """See the module docstring.

    ``send(items, admitted)`` makes the call; ``admitted`` is True because
    the limiter slot for its first attempt is already taken.
    """

    def __init__(self, name: str, pool: CreatePool,
                 send: Callable[[list, bool], Sequence[Any]],
                 limiter: RateLimiter, window: float = 0.05,
                 max_wait: float = 0.5, max_items: int = 50,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.window = window
        self.max_wait = max_wait
        self.max_items = max_items
        self.stats = CreateBatcherStats()
        self._pool = pool
        self._send = send
        self._limiter = limiter
        self._clock = clock
        self._cond = threading.Condition()
        self._groups: dict[Hashable, _Group] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, key: Hashable, item: Any) -> Future:
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"create batcher {self.name} is stopped")
            now = self._clock()
            group = self._groups.setdefault(key, _Group())
            group.entries.append(_Entry(item, future, now))
            group.last_add = now
            self._cond.notify()
        return future

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(f"create batcher {self.name} already "
                                   "started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-create-batcher",
                daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Cancel every queued launch and end the thread."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            for group in self._groups.values():
                for entry in group.entries:
                    entry.future.cancel()
            self._groups.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    # -- scheduling -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due_groups()
                if due is None:
                    return
            for key in due:
                try:
                    self._pool.submit(self._flush, key)
                except RuntimeError:   # pool shut down under us
                    self._cancel(key)

    def _due_groups(self) -> list[Hashable] | None:
        """Under the lock: wait until some group is due; mark and return."""
        while not self._stopping:
            now = self._clock()
            due, wake = [], None
            for key, group in self._groups.items():
                if group.scheduled or not group.entries:
                    continue
                at = min(group.last_add + self.window,
                         group.entries[0].added + self.max_wait)
                if at <= now or len(group.entries) >= self.max_items:
                    group.scheduled = True
                    due.append(key)
                else:
                    wake = at if wake is None else min(wake, at)
            if due:
                return due
            self._cond.wait(None if wake is None else wake - now)
        return None

    def _cancel(self, key: Hashable) -> None:
        with self._cond:
            group = self._groups.pop(key, None)
        for entry in group.entries if group else []:
            entry.future.cancel()

    # -- sending (on a create-pool worker) ------------------------------------
    def _flush(self, key: Hashable) -> None:
        # Wait for our turn first: launches arriving meanwhile join this call.
        self._limiter.acquire()
        with self._cond:
            group = self._groups.get(key)
            if group is None:
                return
            taken = group.entries[:self.max_items]
            del group.entries[:self.max_items]
            group.scheduled = False
            if not group.entries:
                del self._groups[key]
            else:
                self._cond.notify()
        live = [e for e in taken if e.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.calls += 1
        self.stats.items += len(live)
        self.stats.sizes.append(len(live))
        try:
            outcomes = list(self._send([e.item for e in live], True))
        except Exception as exc:
            outcomes = [exc] * len(live)
        if len(outcomes) != len(live):
            log.error("Create batcher %s: %d outcomes for %d launches",
                      self.name, len(outcomes), len(live))
            outcomes = [RuntimeError("no outcome for this launch")] * len(live)
        for entry, outcome in zip(live, outcomes):
            if isinstance(outcome, BaseException):
                entry.future.set_exception(outcome)
            else:
                entry.future.set_result(outcome)

    def summary(self) -> dict:
        sizes = list(self.stats.sizes)
        return {"calls": self.stats.calls, "items": self.stats.items,
                "mean_size": (round(sum(sizes) / len(sizes), 2)
                              if sizes else 0.0),
                "max_size": max(sizes, default=0)}
