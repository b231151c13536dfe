"""LimitedApi: the one layer that limits, retries and reports cloud calls.

Every driver's API client (``AwsApi``, ``AzureApi``, ``OpenStackApi``)
calls its cloud through ``_retrying``, and this is the ONLY place where a
throttle or a transient error is handled: the call is reported to its
limiter once per answer and repeated here.  Whoever made the call -- a
machine step on a create-pool worker, a listing, a quota read -- sees only
the final answer, and a ``ThrottledError`` or ``TransientError`` that
leaves this layer is final for that call: nothing above it sends the call
again (``calls.Call`` fails the launch or delete attempt with it) or
reports it to a limiter again, so one 429 halves the rate exactly once and
one 5xx is repeated by one layer.

Two limiters per provider (``limiter`` for mutating calls at the
provider's ``rate``, ``read_limiter`` for reads at ``READ_RATE_FACTOR``
times that; ``rate`` 0 leaves both unlimited) and one loop around every
call, with the SDK's own retries switched off so the limiter sees every
answer:

- a success reports ``limiter.succeeded()`` so the rate recovers (AIMD);
- ``ThrottledError``: ``limiter.throttled(retry_after)`` halves the rate
  (and holds every caller of that limiter for Retry-After), then the call
  is tried again after ``_throttle_pause``, paced by the limiter, until
  ``throttle_deadline`` seconds (``THROTTLE_DEADLINE``, 5 minutes) have
  passed since the call's first throttle.  A deadline, not a count: a
  throttle storm lasting minutes is the cloud asking us to go slower, not a
  failure, and the halved limiter already spaces the repeats, so it must
  not fail the nodes waiting behind it.  Five minutes fits well inside the
  default ``launch-timeout`` (an hour); a launch with a shorter one is
  failed by the launcher's own timeout meanwhile, and the worker's answer
  then goes to the abandoned attempt.  A throttle is a refusal (the cloud
  did nothing), so every call is repeated after one, idempotent or not;
- ``TransientError`` (5xx, timeouts, resets): tried again after a
  jittered back-off, up to ``transient_attempts`` times -- for an
  idempotent call only.  A create carrying a client token is idempotent
  (AWS RunInstances with its ClientToken, an Azure PUT by name); a call
  marked ``idempotent=False`` (OpenStack's ``POST /servers``: the cloud may
  have made the server before the connection dropped) raises it at once,
  and its launch attempt fails;
- ``AccessError`` (credentials refused, endpoint unreachable) is raised
  at once: it is no throttle or transient error and not this layer's.
  Every call of the provider passes its ``AccessGate`` (``backoff.py``),
  which holds them all back after one, exponentially, and logs it once;
  the gate is that error's one layer (a machine's ``Call`` waits for it);
- anything else is raised at once, already classified by the driver.

A driver subclass supplies the classification per call and may change the
pause after throttling.

Failure story: a call still throttled at its deadline, or failing
transiently after its attempts, raises its last error; the limiter has
then been told of every throttle.  For a create that fails the launch
attempt (the launcher's launch-retries start a new one with a new client
token), for a delete the attempt (the deleter repeats it later), and a
listing or a cache keeps its last answer.

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

__all__ = ["LimitedApi", "READ_RATE_FACTOR", "THROTTLE_DEADLINE",
           "limiter_stats"]

log = logging.getLogger(__name__)

#: read-only calls may go this many times faster than mutating ones
READ_RATE_FACTOR = 10.0

#: seconds after its first throttle a call is still repeated: a storm of
#: minutes must not fail nodes, and it fits inside the default
#: launch-timeout of an hour (see the module docstring)
THROTTLE_DEADLINE = 300.0

#: classify(exc) -> the framework error for ``exc``, or None to raise
#: ``exc`` unchanged (not a cloud answer)
Classifier = Callable[[Exception], "BaseException | None"]


class LimitedApi:
    """Limiters, counters and the retry loop (see the module docstring)."""

    def __init__(self, name: str, rate: float, *, write_limiter: str,
                 transient_attempts: int, backoff: float,
                 max_backoff: float,
                 throttle_deadline: float = THROTTLE_DEADLINE,
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
        self.throttle_deadline = throttle_deadline
        self.transient_attempts = transient_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
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
        first_throttle: float | None = None
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
                now = self._clock()
                if first_throttle is None:
                    first_throttle = now
                if now - first_throttle >= self.throttle_deadline:
                    log.warning("%s: %s still throttled after %.0fs "
                                "(%d answers): giving up", self.name, what,
                                now - first_throttle, throttles)
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
