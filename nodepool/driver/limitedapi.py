"""LimitedApi: the one layer that limits, retries and reports cloud calls.

Every driver's API client (``AwsApi``, ``AzureApi``, ``OpenStackApi``)
calls its cloud through ``_retrying``, and this is the only place where a
throttle or a transient error is handled: the call is reported to its
limiter once per answer and repeated here, a bounded number of times.
Whoever made the call -- a machine step on a create-pool worker, a
listing, a quota read -- sees only the final answer; nothing above this
layer reports a throttle to a limiter again (the launcher's node
launchers and the adapters have no such path), so one 429 halves the
rate exactly once.

Two limiters per provider (``limiter`` for mutating calls at the
provider's ``rate``, ``read_limiter`` for reads at ``READ_RATE_FACTOR``
times that; ``rate`` 0 leaves both unlimited) and one loop around every
call, with the SDK's own retries switched off so the limiter sees every
answer:

- a success reports ``limiter.succeeded()`` so the rate recovers (AIMD);
- ``ThrottledError``: ``limiter.throttled(retry_after)`` halves the rate
  (and holds every caller of that limiter for Retry-After), then the call
  is tried again after ``_throttle_pause``, up to ``throttle_attempts``.
  A throttle is a refusal (the cloud did nothing), so every call is
  repeated after one, idempotent or not;
- ``TransientError``: tried again after a jittered back-off, up to
  ``transient_attempts`` times -- for an idempotent call only.  A call
  marked ``idempotent=False`` (OpenStack's ``POST /servers``: the cloud may
  have made the server before the connection dropped) raises it at once,
  and its caller decides;
- ``AccessError`` (credentials refused, endpoint unreachable) is raised
  at once: every call of the provider passes its ``AccessGate``
  (``backoff.py``), which holds them all back after one, exponentially,
  and logs it once;
- anything else is raised at once, already classified by the driver.

A driver subclass supplies the classification per call and may change the
pause after throttling.

Failure story: a call that keeps being throttled or failing transiently
raises its last error after its attempts; the limiter has then been told
of every throttle, and the caller repeats its step later (a launch within
``launch-timeout``) or keeps its last answer (a listing, a cache).

Threads: any; the counters are guarded by ``_lock``; calls block (limiter
waits, back-off sleeps, HTTP), so state machines make them from the create
pool or another helper thread, never from a loop thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.backoff import AccessGate
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["LimitedApi", "READ_RATE_FACTOR", "limiter_stats"]

log = logging.getLogger(__name__)

#: read-only calls may go this many times faster than mutating ones
READ_RATE_FACTOR = 10.0

#: classify(exc) -> the framework error for ``exc``, or None to raise
#: ``exc`` unchanged (not a cloud answer)
Classifier = Callable[[Exception], "BaseException | None"]


class LimitedApi:
    """Limiters, counters and the retry loop (see the module docstring)."""

    def __init__(self, name: str, rate: float, *, write_limiter: str,
                 throttle_attempts: int, transient_attempts: int,
                 backoff: float, max_backoff: float,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 access: AccessGate | None = None) -> None:
        self.name = name
        self.access = access or AccessGate(name, clock=clock)
        self.limiter = RateLimiter(f"{name}-{write_limiter}", rate,
                                   clock=clock, sleep=sleep)
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

    def _retrying(self, limiter: RateLimiter, what: str,
                  attempt: Callable[[], Any], classify: Classifier, *,
                  admitted: bool = False, background: bool = False,
                  idempotent: bool = True) -> Any:
        """``attempt()`` through ``limiter`` with the retries above.

        ``admitted``: the caller already took a limiter slot for the first
        attempt (e.g. a batcher that waited for its turn).  ``background``:
        nothing waits for this call; it yields every slot another caller
        waits for (``RateLimiter.acquire``).  ``idempotent`` False: a
        transient error is raised at once (repeating could do it twice)."""
        throttles = transients = 0
        while True:
            ticket = self.access.admit()    # raises while backing off
            if not admitted:
                limiter.acquire(background=background)
            admitted = False
            with self._lock:
                self.calls[what] += 1
            try:
                result = attempt()
            except Exception as exc:  # classified below, never swallowed
                error = classify(exc)
                self.access.answered(ticket, exc if error is None else error)
                if error is None:
                    raise
                if error is not exc:
                    error.__cause__ = exc
            else:
                self.access.answered(ticket, None)
                limiter.succeeded()
                return result
            with self._lock:
                self.failures[what] += 1
            if isinstance(error, errors.ThrottledError):
                limiter.throttled(error.retry_after)
                throttles += 1
                if throttles >= self.throttle_attempts:
                    raise error
                self._throttle_pause(throttles, error.retry_after)
            elif isinstance(error, errors.TransientError):
                transients += 1
                if not idempotent or transients >= self.transient_attempts:
                    raise error
                log.info("%s: %s failed transiently (attempt %d): %s",
                         self.name, what, transients, error)
                self._sleep(self._delay(transients))
            else:
                raise error

    def _throttle_pause(self, attempt: int, retry_after: float | None
                        ) -> None:
        """After a throttle: the limiter already holds every caller for a
        Retry-After; without one, back off here."""
        if not retry_after:
            self._sleep(self._delay(attempt))

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
