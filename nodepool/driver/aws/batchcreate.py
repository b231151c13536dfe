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
instead of 100, while a lone launch still leaves within ``window``.  One
flush per key waits on the limiter at a time -- more (up to
``MAX_PENDING``) only while the key's queue holds more than a call's worth
each, as under partial fulfilment; calls of the same key may overlap in
flight, up to the pool's size.

Failure story: ``send(items)`` returns one outcome per item, a result or
an exception instance; if it raises, every item of the call gets that
error.  Partial fulfilment gives the unmapped items ``Unfulfilled``: their
machines send them again at once, and the key's calls shrink to what the
cloud started (``GROW_AFTER`` fully answered calls in a row with nothing of
the key queued double the size again, up to ``max_items``), so a zone that
starts one instance per call is asked one at a time at the full rate
instead of in ever-repeated large calls.  The launches of a key the cloud
has not yet answered fully are spread over calls of a quarter of the
queue each,
so the limiter's slots carry the burst while the first answers are in
flight (``_take_count``).  ``SHORT_AFTER`` launches in a row left unstarted by
partial answers are a capacity signal: ``on_signal(key, True, reason)``, and the next full
answer of several launches ``on_signal(key, False, reason)`` -- the
adapter passes them to the launcher, which records the offering as short
(``nodepool.driver.offerings``).
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

from nodepool.driver import errors
from nodepool.driver.createpool import CreatePool
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["CreateBatcher", "CreateBatcherStats"]

log = logging.getLogger(__name__)

#: fully answered calls in a row before a shrunk call size doubles again
GROW_AFTER = 8
#: a call of a key not yet answered fully takes 1/SPREAD of the queue,
#: and at least PROBE launches
SPREAD = 4
PROBE = 2
#: launches in a row the cloud did not start (partial answers) after which
#: the key's offering is reported short of capacity
#: (``on_signal(key, True, reason)``)
SHORT_AFTER = 3
#: flushes of one key waiting on the limiter at once, while its queue holds
#: more than one call's worth (shrunk calls under partial fulfilment)
MAX_PENDING = 4


@dataclass
class CreateBatcherStats:
    calls: int = 0          # send() calls made
    items: int = 0          # launches in those calls
    partial: int = 0        # calls the cloud answered partially
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=200))


class _Entry(NamedTuple):
    item: Any
    future: Future
    added: float


class _Group:
    __slots__ = ("entries", "last_add", "pending", "due")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.last_add = 0.0
        self.pending = 0        # flushes scheduled, not yet taken
        self.due = False        # what a flush left behind goes at once


class CreateBatcher:
    """See the module docstring.

    ``send(items, admitted)`` makes the call; ``admitted`` is True because
    the limiter slot for its first attempt is already taken.
    """

    def __init__(self, name: str, pool: CreatePool,
                 send: Callable[[list, bool], Sequence[Any]],
                 limiter: RateLimiter, window: float = 0.05,
                 max_wait: float = 0.5, max_items: int = 50,
                 clock: Callable[[], float] = time.monotonic,
                 on_signal: Callable[[Hashable, bool, str], None]
                 | None = None,
                 refusal: Callable[[Hashable], str | None] | None = None):
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
        # Per key, the call size the cloud lately fulfilled (absent: full
        # size): after a partial answer of S instances the next calls ask
        # for S; GROW_AFTER fully answered calls in a row double it again.
        self._sizes: dict[Hashable, int] = {}
        self._full: dict[Hashable, int] = {}
        # Keys a call of two or more launches was fully answered for: until
        # then a flush takes a quarter of the queue (see _take_count).
        self._proven: set[Hashable] = set()
        # Launches in a row the cloud did not start, per key (a fully
        # answered call of several resets it); keys reported short.
        self._unstarted: dict[Hashable, int] = {}
        self._short: set[Hashable] = set()
        self._on_signal = on_signal
        self._refusal = refusal
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
                if not group.entries:
                    continue
                size = self.size(key)
                if group.pending:
                    # More than the waiting flushes will take: another one
                    # may wait on the limiter too (each wait that comes
                    # late would otherwise cost the key a slot).
                    if (group.pending < MAX_PENDING and len(group.entries)
                            >= size * (group.pending + 1)):
                        group.pending += 1
                        due.append(key)
                    continue
                at = min(group.last_add + self.window,
                         group.entries[0].added + self.max_wait)
                if group.due or at <= now or len(group.entries) >= size:
                    group.pending += 1
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
        if self._refused(key):
            return
        # Wait for our turn first: launches arriving meanwhile join this call.
        self._limiter.acquire()
        with self._cond:
            group = self._groups.get(key)
            if group is None:
                return
            size = self._take_count(key, len(group.entries))
            taken = group.entries[:size]
            del group.entries[:size]
            group.pending -= 1
            # Launches left behind by the size of this call were due with
            # it: they do not wait for a new window.
            group.due = bool(group.entries)
            if not group.entries and not group.pending:
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
        self._learn(key, len(live), outcomes)
        if all(isinstance(o, errors.QuotaError) for o in outcomes):
            # The cloud refused the specification: what is queued of it
            # would only be refused too.
            self._fail_queue(key, outcomes[0])
        for entry, outcome in zip(live, outcomes):
            if isinstance(outcome, BaseException):
                entry.future.set_exception(outcome)
            else:
                entry.future.set_result(outcome)

    def _refused(self, key: Hashable) -> bool:
        """Before a call: is the key's offering known to be unavailable
        (a capacity error here, in another pool or in another launcher)?
        Then every launch queued for it fails at once with that reason,
        without a call and without taking a limiter slot."""
        if self._refusal is None:
            return False
        try:
            reason = self._refusal(key)
        except Exception:
            log.exception("Create batcher %s: refusal check failed",
                          self.name)
            return False
        if reason is None:
            return False
        with self._cond:
            group = self._groups.get(key)
            if group is not None:
                group.pending -= 1      # this flush ends here
        self._fail_queue(key, errors.CapacityError(reason))
        return True

    def _fail_queue(self, key: Hashable, error: BaseException) -> None:
        """Fail every launch queued for ``key`` (not those in flight)."""
        with self._cond:
            group = self._groups.get(key)
            if group is None:
                return
            entries, group.entries = group.entries, []
            if not group.pending:
                del self._groups[key]
        failed = 0
        for entry in entries:
            if entry.future.set_running_or_notify_cancel():
                entry.future.set_exception(error)
                failed += 1
        if failed:
            log.info("Create batcher %s: %d queued launch(es) not sent: %s",
                     self.name, failed, error)

    def learned_sizes(self) -> dict:
        """Keys whose calls are shrunk, and to what (status, tests)."""
        with self._cond:
            return dict(self._sizes)

    def size(self, key: Hashable) -> int:
        """How many launches the next call of ``key`` asks for at most."""
        return min(self.max_items, self._sizes.get(key, self.max_items))

    def _take_count(self, key: Hashable, queued: int) -> int:
        """Under the lock: how many of ``queued`` launches one flush takes.

        A key the cloud has not yet answered fully (a new specification,
        or one lately answered partially) is spread over several calls:
        each flush takes a quarter (``1/SPREAD``) of what is queued, at least
        ``PROBE`` (two: a call of one launch tells nothing about partial
        answers), so 30 launches go as 8, 6, 4, 3, 3, 2, 2, 2 in the limiter
        slots that would otherwise stay idle while the first call is in
        flight.  A zone short of capacity has then started eight instances
        when the first answers come back instead of one (the whole burst
        would pay a latency to learn it); a zone without capacity gets a
        handful of refused calls, not one per launch; a zone with capacity
        costs a few calls once, after which the key's launches share one
        call.
        """
        size = self.size(key)
        if key in self._proven or key in self._sizes:
            return size
        return min(size, max(PROBE, -(-queued // SPREAD)))

    def _learn(self, key: Hashable, asked: int, outcomes: Sequence) -> None:
        """Partial answers shrink the key's calls; full ones grow them.
        ``SHORT_AFTER`` launches in a row left unstarted by partial answers
        (one call of ten that started one, or three calls of two that
        started one each) report the key short; the next full answer of
        several launches reports it ample again."""
        unfulfilled = sum(isinstance(o, errors.Unfulfilled)
                          for o in outcomes)
        signal: tuple[bool, str] | None = None
        with self._cond:
            if unfulfilled:
                started = asked - unfulfilled
                self._sizes[key] = max(1, started)
                self._full.pop(key, None)
                self._proven.discard(key)
                self.stats.partial += 1
                unstarted = self._unstarted.get(key, 0) + unfulfilled
                self._unstarted[key] = unstarted
                log.info("Create batcher %s: %d of %d started; calls of "
                         "this kind now ask for %d", self.name, started,
                         asked, self._sizes[key])
                if unstarted >= SHORT_AFTER and key not in self._short:
                    self._short.add(key)
                    signal = (True, f"{unstarted} launches in a row not "
                              f"started (last call: {started} of {asked})")
            else:
                if asked >= 2:
                    self._unstarted.pop(key, None)
                    if key in self._short:
                        self._short.discard(key)
                        signal = (False, f"a call of {asked} was answered "
                                  "in full")
                self._grow(key, asked)
        if signal is not None and self._on_signal is not None:
            try:
                self._on_signal(key, *signal)
            except Exception:
                log.exception("Create batcher %s: capacity signal failed",
                              self.name)

    def _grow(self, key: Hashable, asked: int) -> None:
        """Under the lock: a full answer of ``asked`` launches."""
        if key not in self._sizes:
            if asked >= 2:
                self._proven.add(key)
            return
        if asked < self._sizes[key]:
            return
        # Probe for more only after a run of full answers, and not while
        # launches of the key queue: a zone that keeps starting S per call
        # is not asked for 2S in the middle of a burst (a partial answer
        # costs its rest a latency).
        group = self._groups.get(key)
        if group is not None and group.entries:
            return
        self._full[key] = self._full.get(key, 0) + 1
        if self._full[key] >= GROW_AFTER:
            self._full.pop(key)
            grown = self._sizes[key] * 2
            if grown >= self.max_items:
                del self._sizes[key]
            else:
                self._sizes[key] = grown

    def summary(self) -> dict:
        sizes = list(self.stats.sizes)
        return {"calls": self.stats.calls, "items": self.stats.items,
                "mean_size": (round(sum(sizes) / len(sizes), 2)
                              if sizes else 0.0),
                "max_size": max(sizes, default=0)}
