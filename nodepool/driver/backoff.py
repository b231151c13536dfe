"""AccessGate: one provider's back-off after credential or endpoint errors.

When a cloud refuses the provider's credentials, or its endpoint cannot be
reached, every call of that provider fails the same way: creates, deletes,
listings, quota reads and the token requests inside them.  Repeating each
of them on its own schedule floods the cloud's identity service and the
log.  So every cloud call of a provider passes one gate:

    ticket = gate.admit()          # raises the AccessError while backing off
    try:
        result = call()
    except Exception as exc:
        gate.answered(ticket, classify(exc)); raise
    gate.answered(ticket, None)

- the first ``AccessError`` closes the gate for ``base`` seconds; while it
  is closed ``admit()`` raises a copy of that error at once and no call is
  made;
- once the delay has passed, one call is let through as a probe; if it
  fails with an ``AccessError`` too, the delay doubles, up to ``cap``
  (60 s).  Calls that were already under way when the gate closed are
  counted, but do not double the delay;
- any answer that is not an ``AccessError`` (a success, but also a 404 or
  a quota refusal: the cloud took our credentials) opens the gate again
  and resets the delay; a ``TransientError`` (a connection reset, a 5xx)
  is no answer about our access and changes nothing.

Logging (``RepeatLog``): the first failure is one line at ERROR naming the
provider and the cloud's message; later ones are counted and summarized in
one WARNING line per ``summary_interval`` ("... repeated N times"), and the
recovery is one INFO line with the totals.  Tracebacks go to DEBUG only.
Callers that log a failed call themselves use ``log_failure``, which sends
``AccessError`` to DEBUG: the gate has already said it.

Failure story: the gate itself never fails a call that reached the
cloud; it only refuses calls while it backs off, with the same class of
error (so callers handle them as they handle the real one: a launch
repeats its step within ``launch-timeout``, a delete is sent again by a
later pass, a listing keeps its last answer).  A probe that never answers
does not keep the gate open for everyone: the next probe is admitted one
delay later anyway.

Why not a circuit-breaker library: the ones on PyPI reopen after a fixed
timeout and read the wall clock; this needs an exponential delay, an
injected clock for tests, and the log summary.

Threads: any.  All state is guarded by one lock; nothing blocks or sleeps
under it, and logging happens outside it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from nodepool.driver.errors import AccessError, DriverError, TransientError

__all__ = ["AccessGate", "RepeatLog", "log_failure",
           "BASE_DELAY", "MAX_DELAY", "SUMMARY_INTERVAL"]

log = logging.getLogger("nodepool.driver.access")

#: the first back-off after an access error, in seconds
BASE_DELAY = 1.0
#: the longest back-off: a fixed credential is noticed within a minute
MAX_DELAY = 60.0
#: seconds between two summary lines of a failure that goes on
SUMMARY_INTERVAL = 300.0

Clock = Callable[[], float]


def log_failure(logger: logging.Logger | logging.LoggerAdapter,
                error: BaseException, message: str, *args: object,
                level: int = logging.WARNING) -> None:
    """Log a failed cloud call at ``level``, or at DEBUG when it is an
    ``AccessError`` (its provider's gate logs those, once)."""
    if isinstance(error, AccessError):
        level = logging.DEBUG
    logger.log(level, message, *args)


class RepeatLog:
    """Log a failure once, then count its repeats and summarize them.

    ``report(key, text, detail)`` logs "<text>: <detail>" at ``level`` the
    first time (or when the text of ``key`` changed); repeats are counted
    and every ``interval`` seconds one line "<text> -- repeated N times in
    the last Ts: <detail>" goes out at WARNING.  ``clear(key, text)`` ends
    the run with one line.
    """

    def __init__(self, logger: logging.Logger, interval: float,
                 clock: Clock = time.monotonic) -> None:
        self.log = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # key -> [text, repeats since the last line, time of that line]
        self._runs: dict[str, list] = {}

    def report(self, key: str, text: str, detail: str = "", *,
               level: int = logging.ERROR,
               exc: BaseException | None = None) -> bool:
        """Count one occurrence of ``text`` (its identity) with this
        occurrence's ``detail``; True when a line was logged."""
        now = self.clock()
        with self._lock:
            run = self._runs.get(key)
            if run is None or run[0] != text:
                self._runs[key] = [text, 0, now]
                line, line_level = f"{text}: {detail}", level
            else:
                run[1] += 1
                if now - run[2] < self.interval:
                    line = None
                else:
                    line = (f"{text} -- repeated {run[1]} times in the last "
                            f"{now - run[2]:.0f}s: {detail}")
                    line_level = logging.WARNING
                    run[1], run[2] = 0, now
        if exc is not None and self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s: %s", text, detail, exc_info=exc)
        if line is None:
            return False
        self.log.log(line_level, "%s", line)
        return True

    def clear(self, key: str, text: str, level: int = logging.INFO) -> None:
        """The failure ``key`` is over: one line, if it was reported."""
        with self._lock:
            if self._runs.pop(key, None) is None:
                return
        self.log.log(level, "%s", text)


class AccessGate:
    """See the module docstring.  ``name`` is the provider's name (or what
    else the gate stands for); the defaults of ``base``, ``cap`` and
    ``summary_interval`` are the module's constants at construction time;
    ``level`` is that of the first line of a failure."""

    def __init__(self, name: str, *, base: float | None = None,
                 cap: float | None = None,
                 summary_interval: float | None = None,
                 clock: Clock = time.monotonic,
                 logger: logging.Logger | None = None,
                 level: int = logging.ERROR) -> None:
        self.name = name
        self.level = level
        self.base = BASE_DELAY if base is None else base
        self.cap = MAX_DELAY if cap is None else cap
        if not 0 < self.base <= self.cap:
            raise ValueError(f"bad back-off: base={self.base} cap={self.cap}")
        self.clock = clock
        self.repeats = RepeatLog(
            logger or log, SUMMARY_INTERVAL if summary_interval is None
            else summary_interval, clock)
        self._lock = threading.Lock()
        self._error: AccessError | None = None
        self._delay = 0.0
        self._retry_at = 0.0
        # Bumped each time the delay is set; a probe's failure doubles the
        # delay only if no other failure has done so since it was admitted.
        self._epoch = 0
        self._since = 0.0
        self.failures = 0       # access errors since the gate closed
        self.held = 0           # calls refused without asking the cloud

    # -- questions ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True while a call would be refused now (backing off)."""
        return self.delay_for() > 0

    def delay_for(self) -> float:
        """Seconds until a call may go to the cloud (0.0: now)."""
        with self._lock:
            if self._error is None:
                return 0.0
            return max(0.0, self._retry_at - self.clock())

    @property
    def error(self) -> AccessError | None:
        """The access error the provider is backing off from, if any."""
        return self._error

    # -- the call protocol -------------------------------------------------
    def admit(self) -> int | None:
        """A ticket for one call, or raise the current ``AccessError``."""
        with self._lock:
            error = self._error
            if error is None:
                return None
            now = self.clock()
            if now >= self._retry_at:
                # This call is the probe; nobody else before one more delay
                # (a probe that hangs must not open the gate for all).
                self._retry_at = now + self._delay
                return self._epoch
            self.held += 1
            wait = self._retry_at - now
        held = type(error)(f"{error} (backing off, next try in {wait:.1f}s)",
                           stat_key=error.stat_key)
        raise held

    def answered(self, ticket: int | None,
                 error: BaseException | None) -> None:
        """The call admitted with ``ticket`` ended with ``error`` (the
        classified failure, or None for success).

        A success or an answer of the cloud (not found, quota, throttled,
        a refused request...) opens the gate; a ``TransientError`` (a
        reset connection, a 5xx) or an unclassified exception says nothing
        about our access, and leaves the gate as it is."""
        if isinstance(error, AccessError):
            self._failed(ticket, error)
        elif isinstance(error, TransientError) or (
                error is not None and not isinstance(error, DriverError)):
            return
        elif self._error is not None:
            self._opened()

    # -- transitions ---------------------------------------------------------
    def _failed(self, ticket: int | None, error: AccessError) -> None:
        with self._lock:
            now = self.clock()
            first = self._error is None
            if first:
                self._delay, self._since = self.base, now
                self.failures = self.held = 0
            elif ticket == self._epoch:
                self._delay = min(self.cap, self._delay * 2)
            if first or ticket == self._epoch:
                self._epoch += 1
                self._retry_at = now + self._delay
            self._error = error
            self.failures += 1
            delay, wait = self._delay, max(0.0, self._retry_at - now)
            held = self.held
        if first:
            detail = (f"{error}; its cloud calls back off from {delay:g}s, "
                      f"doubling up to {self.cap:g}s")
        else:
            detail = (f"{error} ({held} calls held back, next try in "
                      f"{wait:.0f}s)")
        self.repeats.report(self.name, f"Provider {self.name}: "
                            f"{error.kind}", detail, exc=error,
                            level=self.level)

    def _opened(self) -> None:
        with self._lock:
            if self._error is None:
                return
            error, self._error = self._error, None
            took = self.clock() - self._since
            failures, held = self.failures, self.held
            self._delay = 0.0
        self.repeats.clear(self.name, (
            f"Provider {self.name}: cloud calls succeed again after "
            f"{failures} failures ({error.kind}) over {took:.1f}s, "
            f"{held} calls held back"))

