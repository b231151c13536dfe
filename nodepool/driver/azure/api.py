"""AzureApi: every ARM call of one provider, rate limited and classified.

Two limiters: ``limiter`` admits writes (PUT, DELETE) at the provider's
``rate`` -- requests per second, config.md §6 -- and ``read_limiter``
admits GETs and lists at ten times that (ARM meters reads and writes in
separate, and for reads much larger, buckets).  ``rate`` 0 leaves both
unlimited.  Every HTTP attempt passes its limiter, retries included.

The SDK clients never retry (``retry_total=0``, see ``auth.py``), so
``call`` sees every answer and retries here:

- ``ThrottledError`` (429): ``limiter.throttled(retry_after)`` -- the
  effective rate halves (AIMD) and no call of that limiter starts before
  ``Retry-After`` has passed, in any thread -- then the call is tried
  again once the limiter admits it, up to ``throttle_attempts`` times;
- ``TransientError`` (5xx, dropped connections, "another operation in
  progress"): retried up to ``transient_attempts`` times after a jittered
  back-off.  Every write we send is a PUT or DELETE of a named resource,
  so repeating one cannot create a second resource;
- anything else is raised at once, already classified;
- a success reports ``limiter.succeeded()`` so the rate recovers.

Threads: any.  The azure clients are thread-safe; counters are guarded by
``_lock``.  Calls block (the limiter sleeps, the HTTP call waits), so
machines only make them from the create pool or the read pool.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.azure.errors import OTHER, classify
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["AzureApi", "READ_RATE_FACTOR", "limiter_stats"]

log = logging.getLogger(__name__)

#: reads may go this many times faster than writes
READ_RATE_FACTOR = 10.0


class AzureApi:
    """Limiters and the retry loop (see the module docstring)."""

    def __init__(self, name: str, rate: float, *,
                 throttle_attempts: int = 8, transient_attempts: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.limiter = RateLimiter(f"{name}-write", rate, clock=clock,
                                   sleep=sleep)
        self.read_limiter = RateLimiter(f"{name}-read",
                                        rate * READ_RATE_FACTOR,
                                        clock=clock, sleep=sleep)
        self.throttle_attempts = throttle_attempts
        self.transient_attempts = transient_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def write(self, what: str, fn: Callable[[], Any], kind: str = OTHER
              ) -> Any:
        """``fn()`` (one PUT or DELETE) through the write limiter."""
        return self.call(self.limiter, what, fn, kind)

    def read(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (GETs, lists with all their pages) through reads."""
        return self.call(self.read_limiter, what, fn, OTHER)

    def call(self, limiter: RateLimiter, what: str, fn: Callable[[], Any],
             kind: str = OTHER) -> Any:
        throttles = transients = 0
        while True:
            limiter.acquire()
            with self._lock:
                self.calls[what] += 1
            try:
                result = fn()
            except Exception as exc:  # classified below, never swallowed
                error = classify(exc, what, kind)
                if error is not exc:
                    error.__cause__ = exc
            else:
                limiter.succeeded()
                return result
            with self._lock:
                self.failures[what] += 1
            if isinstance(error, errors.ThrottledError):
                # The limiter holds every caller back for Retry-After; the
                # next acquire() is where this thread waits for it.
                limiter.throttled(error.retry_after)
                throttles += 1
                if throttles >= self.throttle_attempts:
                    raise error
                if not error.retry_after:
                    self._sleep(self._delay(throttles))
            elif isinstance(error, errors.TransientError):
                transients += 1
                if transients >= self.transient_attempts:
                    raise error
                log.info("%s: %s failed transiently (attempt %d): %s",
                         self.name, what, transients, error)
                self._sleep(self._delay(transients))
            else:
                raise error

    def _delay(self, attempt: int) -> float:
        # Full jitter, so threads refused together do not return together.
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def stats(self) -> dict:
        with self._lock:
            calls, failures = dict(self.calls), dict(self.failures)
        return {"calls": calls, "failures": failures,
                "limiter": limiter_stats(self.limiter),
                "read_limiter": limiter_stats(self.read_limiter)}


def limiter_stats(limiter: RateLimiter) -> dict:
    s = limiter.stats
    return {"rate": limiter.rate, "effective_rate": limiter.effective_rate,
            "calls": s.calls, "waits": s.waits,
            "wait_seconds": round(s.wait_seconds, 3), "throttled": s.throttled}
