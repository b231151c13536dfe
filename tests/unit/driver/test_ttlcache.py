"""TtlCache's one rule: expiry, invalidation, single flight, failures."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nodepool.driver import errors
from nodepool.driver.ttlcache import DUTY, RETRY_DELAY, TtlCache, TtlValue


class Clock:
    """A manual clock that remembers which threads read it."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.readers: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.readers.add(threading.current_thread().name)
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Fetch:
    """Answers 1, 2, 3 ... or raises what ``fail`` holds; ``gate``, when
    set, holds the fetch until the test opens it."""

    def __init__(self):
        self.calls: list = []
        self.fail: Exception | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, key=None):
        self.calls.append(key)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail is not None:
            raise self.fail
        return len(self.calls)


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.005)


@pytest.fixture
def clock():
    return Clock()


def test_fresh_for_ttl_from_the_fetch_start(clock):
    fetch = Fetch()
    value = TtlValue("thing", fetch, ttl=30, clock=clock)
    assert value.peek() is None
    assert value.get() == 1
    clock.advance(29.9)
    assert value.get() == 1
    clock.advance(0.1)
    assert value.get() == 2
    assert value.fetches == 2 and value.peek() == 2


def test_a_slow_answer_stays_fresh_for_its_duration_over_the_duty(clock):
    # A 2 s listing that takes 1.5 s to answer would otherwise be asked
    # again at once, keeping one call in flight all the time.
    def slow_fetch(key=None):
        clock.advance(1.5)
        return fetch(key)
    fetch = Fetch()
    value = TtlValue("listing", slow_fetch, ttl=2, clock=clock)
    assert value.get() == 1
    clock.advance(1.5 / DUTY - 1.5 - 0.1)
    assert value.get() == 1
    clock.advance(0.1)
    assert value.get() == 2
    # ... a caller that must see a recent change is not stretched, and an
    # invalidation still ends the answer at once.
    clock.advance(2.5)
    assert value.get(max_age=2) == 3
    value.invalidate()
    assert value.get() == 4


def test_invalidate_after_our_own_change(clock):
    fetch = Fetch()
    value = TtlValue("thing", fetch, ttl=30, clock=clock)
    assert value.get() == 1
    value.invalidate()                       # we created something
    assert value.get() == 2
    assert value.get() == 2


def test_an_answer_asked_before_the_invalidation_is_not_fresh(clock):
    fetch = Fetch()
    fetch.gate = threading.Event()
    value = TtlValue("thing", fetch, ttl=30, clock=clock)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(value.get)
        assert fetch.entered.wait(10)
        value.invalidate()                   # while the fetch is out
        fetch.gate.set()
        assert first.result(10) == 1
    fetch.gate = None
    # same clock reading, but the answer predates our change
    assert value.get() == 2


def test_single_flight_others_get_the_last_answer(clock):
    fetch = Fetch()
    value = TtlValue("thing", fetch, ttl=30, clock=clock)
    assert value.get() == 1
    clock.advance(31)
    fetch.gate = threading.Event()
    fetch.entered.clear()
    with ThreadPoolExecutor(1) as pool:
        refreshing = pool.submit(value.get)
        assert fetch.entered.wait(10)
        # while one caller refreshes, the others are answered at once
        assert [value.get() for _ in range(30)] == [1] * 30
        fetch.gate.set()
        assert refreshing.result(10) == 2
    assert len(fetch.calls) == 2
    assert value.get() == 2


def test_before_the_first_answer_callers_wait_for_the_one_fetch(clock):
    fetch = Fetch()
    fetch.gate = threading.Event()
    value = TtlValue("thing", fetch, ttl=30, clock=clock)
    with ThreadPoolExecutor(8, thread_name_prefix="caller") as pool:
        first = pool.submit(value.get)
        assert fetch.entered.wait(10)
        others = [pool.submit(value.get) for _ in range(7)]
        # every other caller has looked (it read the clock) and waits
        wait_until(lambda: len(clock.readers) == 8)
        assert not any(f.done() for f in others)
        fetch.gate.set()
        assert first.result(10) == 1
        assert [f.result(10) for f in others] == [1] * 7
    assert len(fetch.calls) == 1


def test_a_failed_refresh_serves_the_last_answer_and_waits(clock):
    fetch = Fetch()
    value = TtlValue("thing", fetch, ttl=30, max_stale=100, clock=clock)
    assert value.get() == 1
    clock.advance(31)
    fetch.fail = errors.TransientError("down")
    assert value.get() == 1                  # failed: the last answer
    assert value.get() == 1                  # ... without asking again
    assert len(fetch.calls) == 2
    clock.advance(RETRY_DELAY)
    assert value.get() == 1                  # asked again, failed again
    assert len(fetch.calls) == 3
    clock.advance(100)                       # the last answer is too old
    with pytest.raises(errors.TransientError):
        value.get()
    fetch.fail = None
    clock.advance(RETRY_DELAY)
    assert value.get() == 5


@pytest.mark.parametrize("error,asked", [
    (errors.TransientError("down"), 1),      # a sick cloud asked once
    (errors.CredentialError("refused"), 3),  # the gate sets that pace
])
def test_with_no_answer_every_caller_gets_the_error(clock, error, asked):
    fetch = Fetch()
    fetch.fail = error
    value = TtlValue("thing", fetch, ttl=300, clock=clock)
    for _ in range(3):
        with pytest.raises(type(error)):
            value.get()
    assert len(fetch.calls) == asked
    clock.advance(RETRY_DELAY)
    fetch.fail = None
    assert value.get() == asked + 1


def test_invalidate_ends_the_retry_delay(clock):
    fetch = Fetch()
    fetch.fail = errors.TransientError("down")
    value = TtlValue("thing", fetch, ttl=300, clock=clock)
    with pytest.raises(errors.TransientError):
        value.get()
    fetch.fail = None
    value.invalidate()
    assert value.get() == 2


def listing(clock):
    """A listing cache refreshed in the background by hand: its fetch,
    the refreshes submitted (run them with ``submitted.pop()()``), it."""
    fetch, submitted = Fetch(), []
    value = TtlValue("listing", fetch, ttl=2, max_stale=60,
                     refresh_in=submitted.append, clock=clock)
    return fetch, submitted, value


def test_background_refresh_answers_even_the_first_caller_at_once(clock):
    fetch, submitted, value = listing(clock)
    assert value.get() == 1                  # nothing yet: fetched here
    assert submitted == []
    clock.advance(3)
    assert value.get() == 1 and value.get() == 1
    assert len(submitted) == 1               # one refresh under way
    submitted.pop()()
    assert value.get() == 2
    clock.advance(61)                        # too old to serve meanwhile
    assert value.get() == 3 and submitted == []


def test_a_failed_background_refresh_keeps_the_last_answer(clock):
    fetch, submitted, value = listing(clock)
    value.get()
    clock.advance(3)
    fetch.fail = errors.TransientError("down")
    assert value.get() == 1
    submitted.pop()()                        # fails, logged
    assert value.get() == 1 and submitted == []   # within the delay


def test_a_stopping_executor_leaves_the_last_answer(clock):
    def refuse(job):
        raise RuntimeError("cannot schedule new futures after shutdown")

    fetch = Fetch()
    value = TtlValue("listing", fetch, ttl=2, refresh_in=refuse,
                     clock=clock)
    value.get()
    clock.advance(3)
    assert value.get() == 1 and value.get() == 1


def test_max_age_never_takes_the_last_answer(clock):
    fetch, submitted, value = listing(clock)
    value.get()
    clock.advance(1)
    assert value.get(max_age=2) == 1         # fresh enough
    assert value.get(max_age=0.5) == 2       # fetched here, not queued
    assert submitted == []
    value.invalidate()
    fetch.fail = errors.TransientError("down")
    with pytest.raises(errors.TransientError):
        value.get(max_age=2)                 # no stale answer for it


def test_keys_are_cached_apart(clock):
    fetch = Fetch()
    cache = TtlCache("quota", fetch, ttl=30, clock=clock)
    assert cache.get("a") == 1 and cache.get("b") == 2
    assert cache.get("a") == 1 and cache.peek("c") is None
    cache.invalidate("a")
    assert cache.get("a") == 3 and cache.get("b") == 2
    cache.invalidate()
    assert cache.get("b") == 4
    assert fetch.calls == ["a", "b", "a", "b"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="thing"):
        TtlCache("thing", Fetch(), ttl=-1)
    assert TtlCache("x", Fetch(), ttl=3).retry_delay == 3
    assert TtlCache("x", Fetch(), ttl=math.inf).retry_delay == RETRY_DELAY


def test_after_invalidate_the_next_caller_fetches_even_with_background(
        clock):
    fetch, submitted, value = listing(clock)
    value.get()
    value.invalidate()                       # e.g. forget_listing()
    assert value.get() == 2 and submitted == []
