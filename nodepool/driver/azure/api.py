"""AzureApi: every ARM call of one provider, rate limited and classified.

Two limiters: ``limiter`` admits writes (PUT, DELETE) at the provider's
``rate`` -- requests per second, config.md §6 -- and ``read_limiter``
admits GETs and lists at ten times that (ARM meters reads and writes in
separate, and for reads much larger, buckets).  ``rate`` 0 leaves both
unlimited.  Every HTTP attempt passes its limiter, retries included.

The SDK clients never retry (``retry_total=0``, see ``auth.py``), so
``call`` sees every answer and retries in ``LimitedApi``'s loop, the one
layer where throttles and transient errors are handled (the callers see
only the final error and report nothing to a limiter):

- ``ThrottledError`` (429): ``limiter.throttled(retry_after)`` -- the
  effective rate halves (AIMD) and no call of that limiter starts before
  ``Retry-After`` has passed, in any thread -- then the call is tried
  again once the limiter admits it, until ``throttle_deadline`` (minutes);
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

import time
from typing import Any, Callable

from nodepool.driver.azure.errors import OTHER, classify
from nodepool.driver.backoff import AccessGate
from nodepool.driver.limitedapi import (READ_RATE_FACTOR, THROTTLE_DEADLINE,
                                       LimitedApi)
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["AzureApi", "READ_RATE_FACTOR"]


class AzureApi(LimitedApi):
    """Limiters and the retry loop (see the module docstring)."""

    def __init__(self, name: str, rate: float, *,
                 transient_attempts: int = 3,
                 throttle_deadline: float = THROTTLE_DEADLINE,
                 backoff: float = 0.5, max_backoff: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 access: AccessGate | None = None) -> None:
        super().__init__(name, rate, write_limiter="write",
                         throttle_deadline=throttle_deadline,
                         transient_attempts=transient_attempts,
                         backoff=backoff, max_backoff=max_backoff,
                         sleep=sleep, clock=clock, access=access)

    def write(self, what: str, fn: Callable[[], Any], kind: str = OTHER
              ) -> Any:
        """``fn()`` (one PUT or DELETE) through the write limiter."""
        return self.call(self.limiter, what, fn, kind)

    def read(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (GETs, lists with all their pages) through reads."""
        return self.call(self.read_limiter, what, fn, OTHER)

    def call(self, limiter: RateLimiter, what: str, fn: Callable[[], Any],
             kind: str = OTHER) -> Any:
        """``fn()`` with limiting, classification and retries; a 429's
        Retry-After holds every caller of ``limiter`` (LimitedApi)."""
        return self._retrying(limiter, what, fn,
                              lambda exc: classify(exc, what, kind))
