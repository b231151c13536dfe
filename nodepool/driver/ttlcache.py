"""TtlCache: the one rule for a driver's cached cloud answers.

Drivers ask their cloud the same few questions over and over -- flavors,
networks, VM sizes, quota limits and usages, the instance listing -- from
many threads at once.  Every such answer is kept in a ``TtlCache`` (one
answer per key; ``TtlValue`` for a single one), under one rule:

- *fresh*: an answer is served for ``ttl`` seconds from the moment its
  fetch *started* (what the cloud said then), unless ``invalidate()`` was
  called after that start: our own create, delete or a quota refusal
  changed what the cloud would answer now; a fetch that is slow for its
  ``ttl`` stretches it: an answer that took ``d`` seconds to fetch stays
  fresh for at least ``d / DUTY`` (a cloud that answers slowly is not kept
  busy with the same question back to back -- EC2's listing of a large
  account takes seconds, and a listing always in flight stalls the calls
  queued behind it);
- *single flight*: when the answer is not fresh, one caller fetches it and
  every other caller meanwhile gets the last answer at once -- before
  there is one, they wait for that fetch's outcome.  With ``refresh_in``
  (an executor's ``submit``) the fetch of an expired answer runs there and
  even the caller that started it gets the last answer at once; after
  ``invalidate()`` the next caller always fetches (and waits) itself: it
  must see our change;
- *stale*: a last answer is served that way only while it is younger than
  ``max_stale``; older, callers wait for the fetch as if there were none;
- *failure*: a fetch that raises keeps the last answer served (within
  ``max_stale``); with none, every caller gets the error.  Each failed
  fetch is logged once, here (``log_failure``: an ``AccessError`` only at
  DEBUG, the provider's gate says it).  Either way the cloud is asked again only after
  ``retry_delay``, so a sick cloud is not asked by every thread -- except
  after an ``AccessError``, whose pace is the provider's ``AccessGate``'s
  (``nodepool.driver.backoff``).  What a caller does with an error (raise,
  count the label as one instance, treat a quota as unlimited) is its own.

``peek()`` returns the last answer without ever fetching, for threads that
must not block (the provider loop).  Time comes from an injected clock.

Why no library: ``cachetools.TTLCache`` drops an entry when it expires, so
its last answer is gone just when single flight and failures need it, and
its ``cached`` lock makes every caller wait for the refresh; dogpile.cache
serves the last answer during a refresh but reads the wall clock.

Threads: any.  One lock (a condition) per cache guards its entries; fetches
run outside it, on the caller's thread or the ``refresh_in`` executor;
waiters are woken when a fetch ends.

Failure story: see *failure* above; a fetch is never retried inside
``get`` (the cloud calls below retry in ``nodepool.driver.limitedapi``),
and a ``refresh_in`` that refuses work (stopping) leaves the last answer
served.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Generic, Hashable, TypeVar

from nodepool.driver.backoff import log_failure
from nodepool.driver.errors import AccessError

__all__ = ["TtlCache", "TtlValue", "RETRY_DELAY", "DUTY"]

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: the most of its time one key's fetches may take: an answer that took
#: ``d`` seconds stays fresh for at least ``d / DUTY``
DUTY = 0.2

#: after a failed fetch, callers get the last answer (or the error) for
#: this long (at most ``ttl``) before the cloud is asked again
RETRY_DELAY = 10.0


class _Entry:
    __slots__ = ("value", "has_value", "at", "took", "generation",
                 "value_gen", "fetching", "error", "retry_at")

    def __init__(self) -> None:
        self.value: Any = None
        self.has_value = False
        self.at = -math.inf             # start of the fetch of ``value``
        self.took = 0.0                 # how long that fetch took
        self.generation = 0             # bumped by invalidate()
        self.value_gen = -1             # generation ``value`` was asked in
        self.fetching = False
        self.error: BaseException | None = None
        self.retry_at = -math.inf


class TtlCache(Generic[K, V]):
    """Answers of ``fetch(key)`` under the module's rule.

    ``what`` names the answers in logs ("flavors", "service quota").
    """

    def __init__(self, what: str, fetch: Callable[[K], V], ttl: float, *,
                 max_stale: float = math.inf,
                 retry_delay: float | None = None,
                 refresh_in: Callable[[Callable[[], None]], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0 or max_stale < 0:
            raise ValueError(f"bad cache settings for {what}: ttl={ttl} "
                             f"max_stale={max_stale}")
        self.what = what
        self.ttl = ttl
        self.max_stale = max_stale
        self.retry_delay = min(ttl, RETRY_DELAY) if retry_delay is None \
            else retry_delay
        self.fetches = 0
        self._fetch = fetch
        self._refresh_in = refresh_in
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: dict[K, _Entry] = {}

    # -- reading ---------------------------------------------------------------
    def get(self, key: K, max_age: float | None = None) -> V:
        """The answer for ``key`` (see the rule).  ``max_age``: this
        caller must not miss a recent change -- it takes only a fresh
        answer at most that old, never the last one: it waits for the
        fetch under way, or fetches itself."""
        strict = max_age is not None
        with self._cond:
            while True:
                entry = self._entries.setdefault(key, _Entry())
                now = self._clock()
                ttl = min(max_age, self.ttl) if strict else \
                    max(self.ttl, entry.took / DUTY)
                if self._fresh(entry, now, ttl):
                    return entry.value
                usable = not strict and entry.has_value and \
                    now - entry.at <= self.max_stale
                if entry.fetching or now < entry.retry_at:
                    if usable:
                        return entry.value
                    if not entry.fetching:
                        raise entry.error  # type: ignore[misc]
                    self._cond.wait()
                    continue
                entry.fetching = True
                generation = entry.generation
                if usable and self._refresh_in is not None and \
                        entry.value_gen == entry.generation:
                    self._start_background(key, entry, generation, now)
                    return entry.value
                break
        return self._run(key, entry, generation, now, stale_ok=not strict)

    def peek(self, key: K) -> V | None:
        """The last answer for ``key``, however old; None before the first.
        Never fetches."""
        with self._cond:
            entry = self._entries.get(key)
            return entry.value if entry is not None else None

    def invalidate(self, key: K | None = None) -> None:
        """Answers fetched so far (of ``key``; None: of every key) are no
        longer fresh, and a failed fetch's retry delay ends: the next
        ``get`` asks the cloud.  The last answer is still served to others
        while that fetch runs."""
        with self._cond:
            entries = list(self._entries.values()) if key is None else \
                [self._entries.setdefault(key, _Entry())]
            for entry in entries:
                entry.generation += 1
                entry.retry_at = -math.inf

    # -- fetching --------------------------------------------------------------
    @staticmethod
    def _fresh(entry: _Entry, now: float, ttl: float) -> bool:
        return (entry.has_value and entry.value_gen == entry.generation
                and now - entry.at < ttl)

    def _start_background(self, key: K, entry: _Entry, generation: int,
                          now: float) -> None:
        try:
            self._refresh_in(  # type: ignore[misc]
                lambda: self._run(key, entry, generation, now,
                                  stale_ok=True, background=True))
        except RuntimeError:    # the executor is shutting down
            entry.fetching = False

    def _run(self, key: K, entry: _Entry, generation: int, started: float,
             stale_ok: bool, background: bool = False) -> Any:
        try:
            value = self._fetch(key)
        except Exception as e:  # every caller's answer, see the rule
            return self._failed(entry, e, started, stale_ok, background)
        took = self._clock() - started
        with self._cond:
            self.fetches += 1
            entry.value, entry.has_value, entry.at = value, True, started
            entry.took = took
            entry.value_gen, entry.error = generation, None
            entry.retry_at = -math.inf
            entry.fetching = False
            self._cond.notify_all()
        return value

    def _failed(self, entry: _Entry, error: Exception, started: float,
                stale_ok: bool, background: bool) -> Any:
        with self._cond:
            entry.fetching = False
            entry.error = error
            if not isinstance(error, AccessError):
                entry.retry_at = started + self.retry_delay
            usable = entry.has_value and \
                started - entry.at <= self.max_stale
            value, age = entry.value, started - entry.at
            self._cond.notify_all()
        if usable and stale_ok:
            log_failure(log, error, "Refreshing %s failed, using the answer "
                        "of %.0fs ago: %s", self.what, age, error)
            return value
        log_failure(log, error, "Fetching %s failed: %s", self.what, error)
        if not background:
            raise error
        return None


class TtlValue(Generic[V]):
    """One answer of ``fetch()`` under the module's rule (a ``TtlCache``
    of one key); the keyword arguments are ``TtlCache``'s."""

    def __init__(self, what: str, fetch: Callable[[], V], ttl: float,
                 **kw: Any) -> None:
        self._cache: TtlCache[None, V] = TtlCache(
            what, lambda _key: fetch(), ttl, **kw)

    @property
    def fetches(self) -> int:
        return self._cache.fetches

    @property
    def ttl(self) -> float:
        return self._cache.ttl

    def get(self, max_age: float | None = None) -> V:
        return self._cache.get(None, max_age)

    def peek(self) -> V | None:
        return self._cache.peek(None)

    def invalidate(self) -> None:
        self._cache.invalidate(None)
