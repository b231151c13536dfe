"""Batcher: many callers' single requests go out as one cloud call.

Each caller ``add()``s one item and gets back a future for that item alone,
so batching is invisible to it.  The batcher thread sends the queued items
through ``executor`` once ``idle_timeout`` passes with no new item, once the
oldest item has waited ``max_wait``, or at once when ``max_items`` are
queued.  One batch is in flight at a time; items added meanwhile form the
next one, so a slow cloud makes batches larger rather than calls more
frequent, which leaves more of the API rate for creates.

Failure story: the executor returns one outcome per item, a result or an
exception instance.  If it raises, returns the wrong number of outcomes, or
fails some items, each failed item of a multi-item batch is sent again on
its own (through ``single``, else ``executor([item])``), so one bad id
cannot fail the others; whatever that call raises becomes the item's own
exception.  No future is ever left pending: ``stop(flush=False)`` cancels
queued items, ``stop()`` sends them first.  Items are retried only once
here; retrying later is the caller's business (deletes are idempotent).

    deleter = Batcher("aws-delete", terminate_ids, max_items=50)
    deleter.start()
    deleter.add("i-0123").result()     # raises that id's own error
    deleter.run_now("i-0456")          # retry and leak paths: no queueing

Threads: one, ``<name>-batcher``; it alone runs the executor and owns
``stats``.  The queue is shared under one condition variable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Generic, NamedTuple, Sequence, TypeVar

from nodepool.driver.errors import TransientError

__all__ = ["Batcher", "BatcherStats", "MissingOutcomeError"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class MissingOutcomeError(TransientError):
    """The executor gave no outcome for this item; it may or may not be done."""


@dataclass
class BatcherStats:
    batches: int = 0            # executor calls made for queued items
    items: int = 0              # items in those calls
    retries: int = 0            # items sent again on their own after a failure
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=100))


class _Entry(NamedTuple):
    item: object
    future: Future
    added: float


class Batcher(Generic[T, R]):
    """Collect items into executor calls of at most ``max_items``.

    ``executor(items)`` returns one outcome per item, in order; ``single``
    (optional) sends one item and returns its result or raises.  Timeouts
    are seconds of ``clock``.
    """

    def __init__(self, name: str,
                 executor: Callable[[list[T]], Sequence[R | BaseException]],
                 max_items: int = 50, idle_timeout: float = 0.1,
                 max_wait: float = 1.0, single: Callable[[T], R] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.name = name
        self.max_items = max_items
        self.idle_timeout = idle_timeout
        self.max_wait = max_wait
        self.stats = BatcherStats()
        self._executor = executor
        self._single = single
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._last_add = 0.0
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, item: T) -> Future:
        """Queue ``item``; the future gets its own result or exception."""
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"batcher {self.name} is stopped")
            self._last_add = self._clock()
            self._pending.append(_Entry(item, future, self._last_add))
            # Wake the thread only when it must change its plan: the first
            # item starts its timers, a full batch goes out at once.
            if len(self._pending) in (1, self.max_items):
                self._cond.notify()
        return future

    def run_now(self, item: T) -> R:
        """Send ``item`` alone, now, in the caller's thread."""
        if self._single is not None:
            return self._single(item)
        outcomes = list(self._executor([item]))
        if len(outcomes) != 1:
            raise MissingOutcomeError(f"{self.name}: no outcome for {item!r}")
        if isinstance(outcomes[0], BaseException):
            raise outcomes[0]
        return outcomes[0]

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(f"batcher {self.name} already started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-batcher", daemon=True)
            self._thread.start()

    def stop(self, flush: bool = True) -> None:
        """Send (``flush``) or cancel what is queued, then end the thread."""
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"batcher {self.name} already stopped")
            self._stopping = True
            if not flush:
                for entry in self._pending:
                    entry.future.cancel()
                self._pending.clear()
            self._cond.notify()
            thread = self._thread
        if thread is None:
            self._run()  # never started: flush in the caller
        else:
            thread.join()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._send(batch)

    def _next_batch(self) -> list[_Entry] | None:
        with self._cond:
            while True:
                if not self._pending:
                    if self._stopping:
                        return None
                    self._cond.wait()
                    continue
                due = min(self._last_add + self.idle_timeout,
                          self._pending[0].added + self.max_wait)
                wait = due - self._clock()
                if self._stopping or len(self._pending) >= self.max_items or wait <= 0:
                    batch = self._pending[:self.max_items]
                    del self._pending[:self.max_items]
                    return batch
                self._cond.wait(wait)

    def _send(self, batch: list[_Entry]) -> None:
        live = [e for e in batch if e.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.sizes.append(len(live))
        outcomes: list[object] = []
        try:
            outcomes = list(self._executor([e.item for e in live]))
        except Exception as exc:
            log.warning("Batcher %s: batch of %d failed: %r", self.name, len(live), exc)
            outcomes = [exc] * len(live)
        if len(outcomes) != len(live):
            log.error("Batcher %s: %d outcomes for %d items; resending each",
                      self.name, len(outcomes), len(live))
            outcomes = [MissingOutcomeError(f"{self.name}: no outcome")] * len(live)
        for entry, outcome in zip(live, outcomes):
            if not isinstance(outcome, BaseException):
                entry.future.set_result(outcome)
            elif len(live) == 1:  # already sent alone: that is its answer
                entry.future.set_exception(outcome)
            else:
                self._resend(entry)

    def _resend(self, entry: _Entry) -> None:
        self.stats.retries += 1
        try:
            entry.future.set_result(self.run_now(entry.item))
        except Exception as exc:
            entry.future.set_exception(exc)
