"""Batcher: many callers' single requests go out as shared cloud calls.

Each caller ``add()``s one item under a key and gets back a future for
that item alone, so batching is invisible to it.  Only items of one key
share a call (the key says which items are compatible: deletes of one
provider all share one, creates share one per pool, label, image and
zone).  What differs between uses is one ``BatchOptions`` value and the
executor function; there is no second batcher class:

    deletes = Batcher("aws-delete", terminate, BatchOptions(
        max_items=50, idle_timeout=1.0, max_wait=3.0,
        resend=RESEND_UNLESS_REFUSED))
    deletes.start()
    deletes.add("i-0123").result()     # raises that id's own error
    deletes.run_now("i-0456")          # retry and leak paths: no queueing

Why it is built this way:

- *When a key's group goes.*  Once ``idle_timeout`` passes with no new
  item of the key, once its oldest item has waited ``max_wait``, or at
  once when a call's worth is queued.  Small timers keep a lone item fast;
  ``max_wait`` bounds a trickle.
- *Who makes the calls.*  Without ``workers`` the batcher's own thread
  makes them, one at a time: a slow cloud makes batches larger rather than
  calls more frequent, which leaves the API rate to creates (deletes).
  With ``workers`` (a create pool) the thread only schedules and the calls
  overlap on the pool's threads, up to ``max_pending`` of one key waiting
  for their turn at once -- more than one only while the key's queue holds
  more than a call's worth each (creates: a call takes 1.5 s, the rate
  allows several per second).
- *Limiter first.*  With ``limiter``, a call first takes its rate slot and
  only *then* takes the items of its key: everything that arrived while it
  waited for its turn joins the call.  Under a limit of 2 calls/s, 100
  launches arriving within a second need a handful of calls instead of
  100, while a lone one still leaves within ``idle_timeout``.  Every
  executor call the batcher makes is preceded by one slot, so an executor
  used with a limiter treats its first attempt as admitted.
- *How many items a call takes.*  ``sizing`` decides per key (``take``)
  and says when a group is full (``threshold``); it learns from every
  call's outcomes.  ``FixedSize`` (the default) is ``max_items``;
  ``nodepool.driver.callsize.AdaptiveSize`` shrinks the calls of a key the
  cloud answers partially and spreads a new key's burst over several
  calls.
- *Per-item outcomes and the resend policy.*  The executor returns one
  outcome per item, a result or an exception instance; ``resend`` says
  which failed items of a multi-item call are sent again alone (deletes:
  everything but a throttle or a transient failure of the whole call --
  resending 50 ids one by one into a throttle would only throttle harder,
  and a delete is retried later anyway; creates: nothing, a partial answer
  is no error of the launches left out and their machines submit them
  again).
- *Refusal gate.*  ``refusal(key)``, asked before each call (before the
  limiter), may return the error every queued item of the key fails with
  at once, without a call or a slot (a capacity error learned elsewhere);
  ``refused_by`` lists the errors that, when a call answers every item
  with one of them, fail what is queued of the key the same way (the cloud
  refused the key itself).

Failure story: if the executor raises, every item of the call gets that
error as its outcome; if it returns the wrong number of outcomes, every
item gets ``MissingOutcomeError`` (a transient error: it may or may not
be done).  Each failed item is then resent alone or given its error, as
the resend policy says; whatever the resend raises is the item's own
answer.  Items are resent at most once here; retrying later is the
caller's business.  An item cancelled before its call is left out.  No
future is ever left pending: ``stop(flush=False)`` cancels what is queued,
``stop()`` sends it first; a worker pool that refuses work (shut down)
cancels the key's items.  A failing ``refusal`` or ``sizing`` callback is
logged and ignored.

Threads: one, ``<name>-batcher``.  Without ``workers`` it alone runs the
executor; with them it only schedules and the calls run on the workers.
The groups and ``stats`` are guarded by one condition variable, which no
thread holds during a call, a limiter wait or a callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import (Any, Callable, Generic, Hashable, NamedTuple, Protocol,
                    Sequence, TypeVar)

from nodepool.driver.errors import (API_RETRIED, WAIT_FOR_ACCESS,
                                    TransientError)
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["Batcher", "BatchOptions", "BatcherStats", "CallSizing",
           "FixedSize", "MissingOutcomeError", "Resend", "RESEND_ALONE",
           "RESEND_UNLESS_REFUSED", "NO_RESEND"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: the weight of the latest call in ``BatcherStats.call_seconds``
CALL_SECONDS_WEIGHT = 0.3


class MissingOutcomeError(TransientError):
    """The executor gave no outcome for this item; it may or may not be done."""


@dataclass(frozen=True)
class Resend:
    """Which failed items of a multi-item call are sent again, alone.

    ``alone``: resend them at all; ``unless``: errors that are the item's
    answer as they are (a throttle of the whole call, say).  A call of one
    item is never resent: its outcome is its answer.
    """

    alone: bool
    unless: tuple[type[BaseException], ...] = ()

    def __call__(self, error: BaseException) -> bool:
        return self.alone and not isinstance(error, self.unless)


#: every failed item of a multi-item call is resent alone (the default)
RESEND_ALONE = Resend(alone=True)
#: every outcome is the item's answer
NO_RESEND = Resend(alone=False)
#: a failure of the whole call that refused it (throttled, failed
#: transiently, or held back by the access gate) is every item's answer:
#: sent one by one, each would only be refused again (deletes)
RESEND_UNLESS_REFUSED = Resend(alone=True,
                               unless=API_RETRIED + WAIT_FOR_ACCESS)


class CallSizing(Protocol):
    """How many items of a key one call takes (``BatchOptions.sizing``).

    Called under the batcher's lock except ``learn``; must not call back
    into the batcher.
    """

    def threshold(self, key: Hashable) -> int:
        """Queued items of ``key`` that make its group due at once."""

    def take(self, key: Hashable, queued: int) -> int:
        """How many of ``queued`` (>= 1) items the next call takes
        (1..queued)."""

    def learn(self, key: Hashable, asked: int, outcomes: Sequence[Any],
              queued: int) -> None:
        """A call of ``asked`` items came back with ``outcomes``;
        ``queued`` items of the key wait meanwhile."""


class FixedSize:
    """Calls of at most ``max_items``; nothing is learned."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items

    def threshold(self, key: Hashable) -> int:
        return self.max_items

    def take(self, key: Hashable, queued: int) -> int:
        return min(self.max_items, queued)

    def learn(self, key: Hashable, asked: int, outcomes: Sequence[Any],
              queued: int) -> None:
        pass


class Workers(Protocol):
    """Where calls run when the batcher's thread only schedules (a
    ``CreatePool``); ``submit`` raises RuntimeError once shut down."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...


@dataclass(frozen=True)
class BatchOptions:
    """Everything a use of the batcher chooses (see the module docstring).

    Times are seconds of the batcher's clock.
    """

    max_items: int = 50
    idle_timeout: float = 0.1
    max_wait: float = 1.0
    resend: Resend = RESEND_ALONE
    #: taken before a call takes its items (limiter-first collection)
    limiter: RateLimiter | None = None
    #: run the calls here (None: on the batcher's thread, one at a time)
    workers: Workers | None = None
    #: calls of one key waiting for their turn at once (with ``workers``)
    max_pending: int = 4
    #: per-key call size (None: ``FixedSize(max_items)``)
    sizing: CallSizing | None = None
    #: before a call: the error to fail the key's queue with, or None
    refusal: Callable[[Hashable], BaseException | None] | None = None
    #: a call answering every item with one of these fails the key's queue
    refused_by: tuple[type[BaseException], ...] = ()
    #: sizes of this many recent calls are kept in ``stats.sizes``
    recent: int = 100


@dataclass
class BatcherStats:
    batches: int = 0            # executor calls made for queued items
    items: int = 0              # items in those calls
    retries: int = 0            # items sent again on their own after a failure
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=100))
    #: how long an executor call takes (s, a moving average of the recent
    #: ones; None before the first has returned)
    call_seconds: float | None = None


class _Entry(NamedTuple):
    item: Any
    future: Future
    added: float


class _Group:
    """The queue of one key."""

    __slots__ = ("entries", "last_add", "pending", "due")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.last_add = 0.0
        self.pending = 0        # calls scheduled that have not taken yet
        self.due = False        # what a call left behind goes at once


class Batcher(Generic[T, R]):
    """Collect items into executor calls, per key (module docstring).

    ``executor(items)`` returns one outcome per item, in order.
    """

    def __init__(self, name: str,
                 executor: Callable[[list[T]], Sequence[R | BaseException]],
                 options: BatchOptions = BatchOptions(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if options.max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.name = name
        self.options = options
        self.sizing: CallSizing = options.sizing or FixedSize(
            options.max_items)
        self.stats = BatcherStats(sizes=deque(maxlen=options.recent))
        self._executor = executor
        self._clock = clock
        self._cond = threading.Condition()
        self._groups: dict[Hashable, _Group] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- callers --------------------------------------------------------------
    def add(self, item: T, key: Hashable = None) -> Future:
        """Queue ``item`` under ``key``; the future gets its own outcome."""
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"batcher {self.name} is stopped")
            now = self._clock()
            group = self._groups.setdefault(key, _Group())
            group.entries.append(_Entry(item, future, now))
            group.last_add = now
            self._cond.notify()
        return future

    def run_now(self, item: T) -> R:
        """Send ``item`` alone, now, in the caller's thread; return its
        result or raise its error."""
        return self._alone(item)

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(f"batcher {self.name} already started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-batcher", daemon=True)
            self._thread.start()

    def stop(self, flush: bool = True) -> None:
        """Send (``flush``) or cancel what is queued, then end the thread.
        Calls already made complete normally."""
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"batcher {self.name} already stopped")
            self._stopping = True
            if not flush:
                for group in self._groups.values():
                    for entry in group.entries:
                        entry.future.cancel()
                self._groups.clear()
            self._cond.notify()
            thread = self._thread
        if thread is None:
            self._run()  # never started: flush in the caller
        else:
            thread.join()

    # -- scheduling (the batcher thread) --------------------------------------
    def _run(self) -> None:
        while (due := self._due_keys()) is not None:
            for key in due:
                if self.options.workers is None:
                    self._flush(key)
                    continue
                try:
                    self.options.workers.submit(self._flush, key)
                except RuntimeError:   # the pool was shut down under us
                    self._cancel(key)

    def _due_keys(self) -> list[Hashable] | None:
        """Wait until some key's group is due; count its call as pending
        and return the keys.  None once stopping and nothing is queued."""
        with self._cond:
            while True:
                now = self._clock()
                due, wake = [], None
                for key, group in self._groups.items():
                    if not group.entries:
                        continue
                    go, at = self._schedule(key, group, now)
                    if go:
                        due.append(key)
                    elif at is not None:
                        wake = at if wake is None else min(wake, at)
                if due:
                    return due
                if self._stopping and not any(
                        g.entries for g in self._groups.values()):
                    return None
                self._cond.wait(None if wake is None else wake - now)

    def _schedule(self, key: Hashable, group: _Group, now: float
                  ) -> tuple[bool, float | None]:
        """Under the lock: (True, None) when another call of ``key`` is
        due now (counted as pending), else (False, when to look again;
        None: once a waiting call has taken its items)."""
        threshold = self._threshold(key)
        if group.pending:
            # More queued than the waiting calls will take: another one
            # may wait for its turn too (each turn that comes late would
            # otherwise cost the key a slot).
            if (group.pending < self.options.max_pending and
                    len(group.entries) >= threshold * (group.pending + 1)):
                group.pending += 1
                return True, None
            return False, None
        at = min(group.last_add + self.options.idle_timeout,
                 group.entries[0].added + self.options.max_wait)
        if (self._stopping or group.due or at <= now
                or len(group.entries) >= threshold):
            group.pending += 1
            return True, None
        return False, at

    def _threshold(self, key: Hashable) -> int:
        try:
            return max(1, self.sizing.threshold(key))
        except Exception:
            log.exception("Batcher %s: sizing failed", self.name)
            return self.options.max_items

    def _cancel(self, key: Hashable) -> None:
        with self._cond:
            group = self._groups.pop(key, None)
            self._cond.notify()
        for entry in group.entries if group else []:
            entry.future.cancel()

    # -- one call (batcher thread or a worker) --------------------------------
    def _flush(self, key: Hashable) -> None:
        refused = self._refused(key)
        if refused is not None:
            self._fail_queue(key, refused, flushing=True)
            return
        if self.options.limiter is not None:
            # Our turn first: items arriving meanwhile join this call.
            self.options.limiter.acquire()
        live = self._take(key)
        if live:
            self._send(key, live)

    def _take(self, key: Hashable) -> list[_Entry]:
        with self._cond:
            group = self._groups.get(key)
            if group is None:       # stopped without flush, or cancelled
                return []
            group.pending = max(0, group.pending - 1)
            taken: list[_Entry] = []
            expired = False
            if group.entries:
                expired = self._clock() >= min(
                    group.last_add + self.options.idle_timeout,
                    group.entries[0].added + self.options.max_wait)
                count = self._take_count(key, len(group.entries))
                taken = group.entries[:count]
                del group.entries[:count]
            # Items left behind by the size of this call go at once when
            # they waited as long as the call's (its timers had run out)
            # or arrived while it waited for its turn at the limiter
            # (waiting again would cost them a slot); behind a call that
            # went because it was full, they keep their own timers.
            group.due = bool(group.entries) and (
                expired or self.options.limiter is not None)
            if not group.entries and not group.pending:
                del self._groups[key]
            self._cond.notify()
        return [e for e in taken if e.future.set_running_or_notify_cancel()]

    def _take_count(self, key: Hashable, queued: int) -> int:
        try:
            count = self.sizing.take(key, queued)
        except Exception:
            log.exception("Batcher %s: sizing failed", self.name)
            count = self.options.max_items
        return max(1, min(count, queued, self.options.max_items))

    def _send(self, key: Hashable, live: list[_Entry]) -> None:
        with self._cond:
            self.stats.batches += 1
            self.stats.items += len(live)
            self.stats.sizes.append(len(live))
        begun = self._clock()
        outcomes = self._call([e.item for e in live])
        self._timed(self._clock() - begun)
        self._learn(key, len(live), outcomes)
        refused_by = self.options.refused_by
        if refused_by and all(isinstance(o, refused_by) for o in outcomes):
            # The cloud refused the key itself: what is queued of it would
            # only be refused too.
            self._fail_queue(key, outcomes[0])
        for entry, outcome in zip(live, outcomes):
            if not isinstance(outcome, BaseException):
                entry.future.set_result(outcome)
            elif len(live) > 1 and self.options.resend(outcome):
                self._resend(entry)
            else:
                entry.future.set_exception(outcome)

    def _call(self, items: list) -> list:
        """One executor call: exactly one outcome per item."""
        try:
            outcomes = list(self._executor(items))
        except Exception as exc:
            # Every item's own answer: its caller reports it (once, for an
            # access error held back by the provider's gate).
            log.debug("Batcher %s: call of %d failed: %r", self.name,
                      len(items), exc)
            return [exc] * len(items)
        if len(outcomes) != len(items):
            log.error("Batcher %s: %d outcomes for %d items", self.name,
                      len(outcomes), len(items))
            return [MissingOutcomeError(f"{self.name}: no outcome")
                    for _ in items]
        return outcomes

    def _timed(self, seconds: float) -> None:
        with self._cond:
            last = self.stats.call_seconds
            self.stats.call_seconds = seconds if last is None else (
                last + CALL_SECONDS_WEIGHT * (seconds - last))

    def _learn(self, key: Hashable, asked: int, outcomes: list) -> None:
        with self._cond:
            group = self._groups.get(key)
            queued = len(group.entries) if group is not None else 0
        try:
            self.sizing.learn(key, asked, outcomes, queued)
        except Exception:
            log.exception("Batcher %s: sizing failed", self.name)

    def _resend(self, entry: _Entry) -> None:
        with self._cond:
            self.stats.retries += 1
        try:
            entry.future.set_result(self._alone(entry.item))
        except Exception as exc:
            entry.future.set_exception(exc)

    def _alone(self, item: T) -> R:
        if self.options.limiter is not None:
            self.options.limiter.acquire()
        (outcome,) = self._call([item])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _refused(self, key: Hashable) -> BaseException | None:
        """Before a call: is the key refused now (``options.refusal``)?"""
        if self.options.refusal is None:
            return None
        try:
            return self.options.refusal(key)
        except Exception:
            log.exception("Batcher %s: refusal check failed", self.name)
            return None

    def _fail_queue(self, key: Hashable, error: BaseException,
                    flushing: bool = False) -> None:
        """Fail every item queued for ``key`` (not those in flight);
        ``flushing``: a scheduled call of the key ends here."""
        with self._cond:
            group = self._groups.get(key)
            if group is None:
                return
            if flushing:
                group.pending = max(0, group.pending - 1)
            entries, group.entries = group.entries, []
            group.due = False
            if not group.pending:
                del self._groups[key]
            self._cond.notify()
        failed = 0
        for entry in entries:
            if entry.future.set_running_or_notify_cancel():
                entry.future.set_exception(error)
                failed += 1
        if failed:
            log.info("Batcher %s: %d queued item(s) not sent: %s",
                     self.name, failed, error)

    def summary(self) -> dict:
        """Calls, items and call sizes, for benchmarks and debugging."""
        with self._cond:
            sizes = list(self.stats.sizes)
            calls, items = self.stats.batches, self.stats.items
            retries = self.stats.retries
        return {"batches": calls, "items": items, "retries": retries,
                "mean_size": (round(sum(sizes) / len(sizes), 2)
                              if sizes else 0.0),
                "max_size": max(sizes, default=0)}
