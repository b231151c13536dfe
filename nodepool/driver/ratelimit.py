"""RateLimiter: spaces the starts of cloud API calls across all threads.

A limiter is a token bucket of capacity ``burst`` refilled at ``rate`` tokens
per second, kept as one "theoretical arrival time" (the GCRA form), so any
window of ``w`` seconds holds at most ``floor(w * rate) + burst`` starts.
With ``burst=1`` that is strict spacing of ``1/rate`` between call starts.
The bucket starts full: the first call never waits, and it is recorded, so
the second one is spaced from it (upstream never recorded the first call,
so nothing was ever limited).

Failure story: when the cloud throttles anyway, callers report it with
``throttled(retry_after)``.  The effective rate is then halved (AIMD, down
to ``min_rate``) and, if the cloud named a wait, no call starts before it
has passed; each ``succeeded()`` adds back a step until the configured rate
is reached again.  The limiter never raises; a waiting caller just sleeps.

    limiter = RateLimiter("aws-us-east-1", rate=2.0)
    with limiter:
        ec2.run_instances(...)

Background calls (``acquire(background=True)``: the AWS tagger's
CreateTags, which no node waits for) take a slot only while no other
caller waits for one, so under a burst every slot goes to the calls a
request waits on and the background catches up afterwards.

Several launchers serving one cloud account each run a limiter at their
share of its rate: ``set_share(fraction)`` scales ``rate`` (and the floor
and recovery step with it) to that fraction of the configured rate, kept
in ``configured_rate``; ``waiting`` tells whether callers queue for a slot
(``nodepool.launcher.ratebudget`` sets the share and reads ``waiting``).

Threads: a limiter starts none.  It is shared by every thread that makes
the calls it spaces -- the driver's API client (``limitedapi``) acquires
it on whichever thread makes a cloud call (create, delete and read pools,
batchers, pool workers, the cleanup worker) -- and the ``RateBudget``
thread calls ``set_share`` and reads ``waiting``.  All state is guarded by
one lock, ``_lock``; sleeping happens outside it, and a woken caller
re-checks, so a rate change applies to sleepers too.  ``acquire`` blocks
its caller for as long as the rate asks: it must never be called from a
thread that may not wait (a provider's loop, kazoo's threads).  The
``stats`` counters are changed under the lock and read without it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["RateLimiter", "RateLimiterStats"]

log = logging.getLogger(__name__)


@dataclass
class RateLimiterStats:
    calls: int = 0              # calls admitted
    waits: int = 0              # of which had to wait
    wait_seconds: float = 0.0   # total time spent waiting
    throttled: int = 0          # throttled() reports


class RateLimiter:
    """Admit calls at ``rate`` per second (0: unlimited) with bursts of ``burst``.

    ``backoff`` multiplies the effective rate on each ``throttled()``;
    ``min_rate`` (default ``rate/10``) is the floor; ``recovery`` (default
    ``rate/20``) is added back per ``succeeded()``.  ``clock`` and ``sleep``
    are injectable so tests need not really wait.
    """

    def __init__(self, name: str, rate: float, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, *,
                 backoff: float = 0.5, min_rate: float | None = None,
                 recovery: float | None = None) -> None:
        if rate < 0 or burst < 1 or not 0 < backoff < 1:
            raise ValueError(f"bad limiter settings: rate={rate} burst={burst} "
                             f"backoff={backoff}")
        self.name = name
        self.rate = float(rate)
        self.burst = float(burst)
        self.effective_rate = self.rate
        self.min_rate = self.rate / 10 if min_rate is None else min_rate
        self.recovery = self.rate / 20 if recovery is None else recovery
        self.backoff = backoff
        #: the rate given at construction; ``rate`` is ``share`` of it
        self.configured_rate = self.rate
        self.share = 1.0
        self.stats = RateLimiterStats()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # When the bucket would be empty if every call so far had been
        # admitted at the exact rate; None until the first call.
        self._tat: float | None = None
        # Earliest start the cloud allowed us after a throttle with Retry-After.
        self._not_before: float | None = None
        # Foreground callers sleeping for a slot (background calls yield).
        self._waiting = 0

    def _delay_at(self, now: float) -> float:
        delay = 0.0
        if self._not_before is not None:
            delay = self._not_before - now
        if self.effective_rate > 0 and self._tat is not None:
            tolerance = (self.burst - 1) / self.effective_rate
            delay = max(delay, self._tat - tolerance - now)
        # (A rounding error in the sums above is no reason to wait: the
        # burst'th call of a full bucket came out a few ulps late.)
        return delay if delay > 1e-9 else 0.0

    def _set_rate(self, rate: float, now: float) -> None:
        # Rescale the backlog so the bucket keeps its token count; a bare
        # rate change would otherwise let a slower limiter burst sooner.
        if self._tat is not None and self._tat > now and rate > 0:
            self._tat = now + (self._tat - now) * self.effective_rate / rate
        self.effective_rate = rate

    def _take(self, now: float) -> None:
        if self.effective_rate > 0:
            start = now if self._tat is None else max(self._tat, now)
            self._tat = start + 1 / self.effective_rate
        self.stats.calls += 1

    def tokens(self) -> float:
        """Calls that could start now without waiting (the bucket's level,
        0 to ``burst``; ``inf`` when unlimited)."""
        with self._lock:
            if self.effective_rate <= 0:
                return math.inf
            if self._tat is None:
                return self.burst
            backlog = max(0.0, self._tat - self._clock()) * self.effective_rate
            return max(0.0, self.burst - backlog)

    def delay_for(self) -> float:
        """Seconds until a call could start now (0.0: it could start at once)."""
        with self._lock:
            return self._delay_at(self._clock())

    def acquire(self, block: bool = True, background: bool = False
                ) -> float:
        """Take one slot; return the seconds waited (>= 0.0).

        With ``block=False`` nothing is taken when a wait would be needed
        and -1.0 is returned, so test the result with ``>= 0``, not truth
        (an immediate admission returns 0.0).  A ``background`` call also
        waits while any other caller is waiting for a slot.
        """
        start = self._clock()
        slept = waiting = False
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    delay = self._delay_at(now)
                    if background and self._waiting and delay <= 0:
                        # Let the waiting caller have this slot; look
                        # again one slot later.
                        delay = (1 / self.effective_rate
                                 if self.effective_rate > 0 else 0.01)
                    elif delay <= 0:
                        self._take(now)
                        if not slept:  # lock contention is not limiting
                            return 0.0
                        self.stats.waits += 1
                        self.stats.wait_seconds += now - start
                        return now - start
                    if not block:
                        return -1.0
                    if not background and not waiting:
                        waiting = True
                        self._waiting += 1
                self._sleep(delay)
                slept = True
        finally:
            if waiting:
                with self._lock:
                    self._waiting -= 1

    def try_acquire(self) -> bool:
        """Take a slot only if no wait is needed."""
        return self.acquire(block=False) >= 0

    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def throttled(self, retry_after: float | None = None) -> None:
        """The cloud refused a call as too frequent: slow every caller down."""
        with self._lock:
            self.stats.throttled += 1
            now = self._clock()
            if self.rate > 0:
                self._set_rate(max(self.min_rate,
                                   self.effective_rate * self.backoff), now)
            if retry_after:
                until = now + retry_after
                self._not_before = max(self._not_before or until, until)
            rate = self.effective_rate
        log.info("Rate limiter %s throttled by the cloud: %.3g/s, retry after %s",
                 self.name, rate, retry_after)

    def succeeded(self) -> None:
        """A call went through: step the effective rate back towards ``rate``."""
        with self._lock:
            if self.effective_rate < self.rate:
                self._set_rate(min(self.rate, self.effective_rate + self.recovery),
                               self._clock())

    @property
    def waiting(self) -> int:
        """Foreground callers sleeping for a slot now."""
        with self._lock:
            return self._waiting

    def set_share(self, share: float) -> None:
        """Run at ``share`` (0 < share <= 1) of ``configured_rate``.

        ``rate``, ``min_rate`` and ``recovery`` scale with it, and so does
        the effective rate: a limiter backed off to half its rate stays at
        half of the new one.  No effect on an unlimited limiter."""
        if not 0 < share <= 1:
            raise ValueError(f"bad limiter share {share!r}: not in (0, 1]")
        with self._lock:
            if self.configured_rate <= 0 or share == self.share:
                return
            factor = share / self.share
            self.share = share
            self.rate = self.configured_rate * share
            self.min_rate *= factor
            self.recovery *= factor
            self._set_rate(min(self.rate, self.effective_rate * factor),
                           self._clock())
