"""AdaptiveSize: call sizes learned from partial answers, per key.

A ``CallSizing`` for the ``Batcher`` (``BatchOptions.sizing``) of a cloud
that may start fewer instances than one call asked for (EC2 "launches as
many as it can" when a zone runs short): the launches left out get
``errors.Unfulfilled`` and their machines submit them again at once.

Why it learns, and what:

- *Shrink after a partial answer.*  A call of a key that started S of N
  makes the key's next calls ask for S (at least one); ``GROW_AFTER``
  fully answered calls in a row, with nothing of the key queued, double
  the size again, up to ``max_items``.  A zone that starts one instance
  per call is then asked one at a time at the full rate instead of in
  ever-repeated large calls, and it is not asked for 2S in the middle of a
  burst (a partial answer costs the rest of it a latency).
- *Spread a key not yet answered fully.*  A new key, or one lately
  answered partially, takes a quarter (``1/SPREAD``) of its queue per
  call, at least ``PROBE`` (a call of one tells nothing about partial
  answers): 30 launches go as 8, 6, 4, 3, 3, 2, 2, 2 in the limiter slots
  that would otherwise stay idle while the first call is in flight.  A
  zone short of capacity has then started eight instances when the first
  answers come back instead of one; a zone without capacity gets a handful of refused
  calls, not one per launch; a zone with capacity costs a few calls once,
  after which its launches share one call.  Only over the slots there
  are: ``spread_over()`` (the limiter's rate times a call's duration)
  says how many calls can start while one is in flight, and the queue is
  split that many ways at most.  Under a scarce rate (one slot per call,
  say 2 calls/s shared by three launchers against 1.5 s calls) nothing is
  spread: a quarter of the queue would only spend a slot that a full call
  needs, and no answer would come back sooner to learn from.
- *Capacity signal.*  ``SHORT_AFTER`` launches in a row left unstarted by
  partial answers (one call of ten that started one is as clear as three
  calls of two that started one each) report the key short,
  ``on_signal(key, True, reason)``; the next full answer of several
  launches reports it ample again, ``on_signal(key, False, reason)``.  The
  AWS adapter passes them to the launcher, which records the offering as
  short (``nodepool.driver.offerings``).

Failure story: no cloud calls here.  An exception from ``on_signal`` is
logged and dropped; the learned sizes stay as they are.

Threads: called by the batcher's thread (``threshold``, ``take``) and by
its workers (``learn``); the state is under one lock, which is never held
while ``on_signal`` runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Hashable, Sequence

from nodepool.driver import errors

__all__ = ["AdaptiveSize", "GROW_AFTER", "SPREAD", "PROBE", "SHORT_AFTER"]

log = logging.getLogger(__name__)

#: fully answered calls in a row before a shrunk call size doubles again
GROW_AFTER = 8
#: a call of a key not yet answered fully takes 1/SPREAD of the queue,
#: and at least PROBE items
SPREAD = 4
PROBE = 2
#: launches in a row the cloud did not start (partial answers) after which
#: the key is reported short (``on_signal(key, True, reason)``)
SHORT_AFTER = 3


class AdaptiveSize:
    """See the module docstring; ``name`` appears in the logs."""

    def __init__(self, name: str, max_items: int,
                 on_signal: Callable[[Hashable, bool, str], None]
                 | None = None,
                 spread_over: Callable[[], float] | None = None) -> None:
        self.name = name
        self.max_items = max_items
        self.partial = 0        # calls the cloud answered partially
        self._on_signal = on_signal
        self._spread_over = spread_over
        self._lock = threading.Lock()
        # Per key, the call size the cloud lately fulfilled (absent: full
        # size), and the fully answered calls in a row since.
        self._sizes: dict[Hashable, int] = {}
        self._full: dict[Hashable, int] = {}
        # Keys a call of two or more was fully answered for: until then a
        # call takes a quarter of the queue.
        self._proven: set[Hashable] = set()
        # Launches in a row the cloud did not start, per key; keys
        # reported short.
        self._unstarted: dict[Hashable, int] = {}
        self._short: set[Hashable] = set()

    # -- CallSizing -----------------------------------------------------------
    def threshold(self, key: Hashable) -> int:
        with self._lock:
            return self._size(key)

    def take(self, key: Hashable, queued: int) -> int:
        with self._lock:
            size = self._size(key)
            if key in self._proven or key in self._sizes:
                return min(size, queued)
        ways = self._ways()       # only for a key not yet proven
        if ways <= 1:
            return min(size, queued)
        return min(size, queued, max(PROBE, -(-queued // ways)))

    def _ways(self) -> int:
        """How many ways an unproven key's queue is split: ``SPREAD``,
        or fewer when fewer calls can start while one is in flight."""
        if self._spread_over is None:
            return SPREAD
        try:
            return max(1, int(min(SPREAD, self._spread_over())))
        except Exception:
            log.exception("%s: spread_over failed", self.name)
            return SPREAD

    def learn(self, key: Hashable, asked: int, outcomes: Sequence[Any],
              queued: int) -> None:
        unfulfilled = sum(isinstance(o, errors.Unfulfilled)
                          for o in outcomes)
        with self._lock:
            if unfulfilled:
                signal = self._shrink(key, asked, unfulfilled)
            else:
                signal = self._answered(key, asked, queued)
        if signal is not None and self._on_signal is not None:
            try:
                self._on_signal(key, *signal)
            except Exception:
                log.exception("%s: capacity signal failed", self.name)

    # -- what was learned -----------------------------------------------------
    def learned(self) -> dict:
        """Keys whose calls are shrunk, and to what (status, tests)."""
        with self._lock:
            return dict(self._sizes)

    def proven(self, key: Hashable) -> bool:
        """True once a call of several of ``key`` was answered in full."""
        with self._lock:
            return key in self._proven

    def prove(self, key: Hashable) -> None:
        """Treat ``key`` as answered in full (tests, warm starts)."""
        with self._lock:
            self._proven.add(key)
            self._sizes.pop(key, None)

    # -- under the lock -------------------------------------------------------
    def _size(self, key: Hashable) -> int:
        return min(self.max_items, self._sizes.get(key, self.max_items))

    def _shrink(self, key: Hashable, asked: int, unfulfilled: int
                ) -> tuple[bool, str] | None:
        started = asked - unfulfilled
        self._sizes[key] = max(1, started)
        self._full.pop(key, None)
        self._proven.discard(key)
        self.partial += 1
        unstarted = self._unstarted.get(key, 0) + unfulfilled
        self._unstarted[key] = unstarted
        log.info("%s: %d of %d started; calls of this kind now ask for %d",
                 self.name, started, asked, self._sizes[key])
        if unstarted >= SHORT_AFTER and key not in self._short:
            self._short.add(key)
            return True, (f"{unstarted} launches in a row not started "
                          f"(last call: {started} of {asked})")
        return None

    def _answered(self, key: Hashable, asked: int, queued: int
                  ) -> tuple[bool, str] | None:
        signal = None
        if asked >= 2:
            self._unstarted.pop(key, None)
            if key in self._short:
                self._short.discard(key)
                signal = (False, f"a call of {asked} was answered in full")
        self._grow(key, asked, queued)
        return signal

    def _grow(self, key: Hashable, asked: int, queued: int) -> None:
        if key not in self._sizes:
            if asked >= 2:
                self._proven.add(key)
            return
        # Probe for more only after a run of full answers, and not while
        # launches of the key queue.
        if asked < self._sizes[key] or queued:
            return
        self._full[key] = self._full.get(key, 0) + 1
        if self._full[key] >= GROW_AFTER:
            self._full.pop(key)
            grown = self._sizes[key] * 2
            if grown >= self.max_items:
                del self._sizes[key]
            else:
                self._sizes[key] = grown
