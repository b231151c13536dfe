"""RateLimiter: exact logic on a fake clock, then real threads on the real clock."""

from __future__ import annotations

import math
import threading
import time

import pytest

from nodepool.driver.ratelimit import RateLimiter


class FakeClock:
    """A clock whose sleep advances it instantly, recording every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(rate: float, burst: float = 1.0, **kw) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter("test", rate, burst, clock=clock, sleep=clock.sleep, **kw), clock


def starts_of(lim: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    out = []
    for _ in range(n):
        lim.acquire()
        out.append(clock.now)
    return out


def worst_window_excess(starts: list[float], rate: float, burst: float,
                        slack: float = 0.0) -> int:
    """Largest (starts in a window) - (floor(w*rate) + burst) over all windows.

    The tightest windows begin and end on a start, so checking every pair of
    starts checks every window.  ``slack`` widens w to absorb the scheduler
    gap between the limiter admitting a thread and the thread's timestamp.
    """
    s = sorted(starts)
    worst = -math.inf
    for i in range(len(s)):
        for k in range(i, len(s)):
            allowed = math.floor((s[k] - s[i] + slack) * rate) + burst
            worst = max(worst, (k - i + 1) - allowed)
    return int(worst)


def test_first_call_does_not_wait_and_is_recorded():
    lim, clock = limiter(rate=4)
    assert lim.acquire() == 0.0
    assert clock.sleeps == []
    # The first call counts: the second is spaced 1/rate from it.
    assert lim.acquire() == pytest.approx(0.25)
    assert lim.stats.calls == 2 and lim.stats.waits == 1


def test_strict_spacing_between_starts():
    lim, clock = limiter(rate=4)
    starts = starts_of(lim, clock, 5)
    assert [s - 100.0 for s in starts] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert lim.stats.wait_seconds == pytest.approx(1.0)


def test_idle_time_does_not_bank_credit_with_burst_one():
    lim, clock = limiter(rate=2)
    lim.acquire()
    clock.now += 10
    assert lim.acquire() == 0.0
    assert lim.delay_for() == pytest.approx(0.5)


def test_rate_zero_does_not_limit():
    lim, clock = limiter(rate=0)
    for _ in range(1000):
        assert lim.acquire() == 0.0
    assert clock.sleeps == [] and lim.stats.calls == 1000
    assert lim.delay_for() == 0.0


def test_token_bucket_burst_then_refill():
    lim, clock = limiter(rate=2, burst=3)
    starts = [s - 100.0 for s in starts_of(lim, clock, 5)]
    assert starts == pytest.approx([0, 0, 0, 0.5, 1.0])
    # A long pause refills the bucket, but only up to its capacity.
    clock.now += 60
    base = clock.now
    later = [s - base for s in starts_of(lim, clock, 4)]
    assert later == pytest.approx([0, 0, 0, 0.5])
    assert worst_window_excess(starts, 2, 3) <= 0


def test_partial_refill():
    lim, clock = limiter(rate=2, burst=3)
    starts_of(lim, clock, 3)
    clock.now += 0.5  # one token back
    assert lim.acquire() == 0.0
    assert lim.delay_for() == pytest.approx(0.5)


def test_non_blocking_acquire_takes_nothing_when_it_would_wait():
    lim, clock = limiter(rate=4)
    assert lim.acquire(block=False) == 0.0
    assert lim.acquire(block=False) == -1.0
    assert not lim.try_acquire()
    assert lim.stats.calls == 1 and clock.sleeps == []
    assert lim.delay_for() == pytest.approx(0.25)
    clock.now += 0.25
    assert lim.try_acquire()
    assert lim.stats.calls == 2


def test_context_manager_acquires():
    lim, clock = limiter(rate=10)
    with lim:
        pass
    with lim as same:
        assert same is lim
    assert lim.stats.calls == 2
    assert clock.sleeps == pytest.approx([0.1])


def test_aimd_slows_on_throttle_and_recovers():
    lim, clock = limiter(rate=8, min_rate=1, recovery=1)
    lim.acquire()
    lim.throttled()
    assert lim.effective_rate == 4
    lim.throttled()
    lim.throttled()
    lim.throttled()
    assert lim.effective_rate == 1  # floor, not 0.5
    assert lim.stats.throttled == 4
    clock.now += 10
    lim.acquire()
    assert lim.delay_for() == pytest.approx(1.0)  # spaced at the slowed rate
    rates = []
    for _ in range(9):
        lim.succeeded()
        rates.append(lim.effective_rate)
    assert rates == [2, 3, 4, 5, 6, 7, 8, 8, 8]
    clock.now += 10
    lim.acquire()
    assert lim.delay_for() == pytest.approx(1 / 8)


def test_throttle_does_not_let_a_slowed_bucket_burst_sooner():
    lim, clock = limiter(rate=4, burst=4)
    starts_of(lim, clock, 4)  # bucket empty; next token in 0.25 s
    lim.throttled()           # half the rate: that token now takes 0.5 s
    assert lim.delay_for() == pytest.approx(0.5)


def test_retry_after_pauses_even_an_unlimited_limiter():
    lim, clock = limiter(rate=0)
    lim.acquire()
    lim.throttled(retry_after=3)
    assert lim.effective_rate == 0  # nothing to halve; the pause still applies
    assert lim.acquire() == pytest.approx(3)
    assert lim.acquire() == 0.0


def test_bad_settings_rejected():
    for kw in ({"rate": -1}, {"rate": 1, "burst": 0.5}, {"rate": 1, "backoff": 1}):
        with pytest.raises(ValueError):
            RateLimiter("bad", **kw)


def run_threads(lim: RateLimiter, threads: int,
                calls: int) -> tuple[float, list[float]]:
    """``threads`` callers each make ``calls`` calls; return t0 and the start stamps."""
    starts: list[float] = []
    stamp_lock = threading.Lock()
    go = threading.Event()

    def caller() -> None:
        go.wait(10)
        for _ in range(calls):
            with lim:
                t = time.monotonic()
            with stamp_lock:
                starts.append(t)

    workers = [threading.Thread(target=caller, name=f"caller-{i}")
               for i in range(threads)]
    for w in workers:
        w.start()
    t0 = time.monotonic()
    go.set()
    for w in workers:
        w.join(30)
        assert not w.is_alive()
    return t0, starts


# The scheduler may run a thread a few ms after the limiter admitted it, so
# stamps get 15 ms of slack; an unlimited run overshoots by far more (below).
SLACK = 0.015


@pytest.mark.parametrize("rate,burst", [(20.0, 1.0), (20.0, 4.0)])
def test_concurrent_callers_never_exceed_rate(rate, burst):
    lim = RateLimiter("threads", rate, burst)
    t0, starts = run_threads(lim, threads=8, calls=4)
    assert len(starts) == 32 and lim.stats.calls == 32
    assert min(starts) - t0 < 0.05, "the first call must not wait"
    assert worst_window_excess(starts, rate, burst, SLACK) <= 0
    # ... and the limiter does not over-throttle either: a limiter that
    # waited twice per call would take twice as long.  (A loaded machine
    # runs admitted threads late, which only ever stretches the span.)
    span = max(starts) - min(starts)
    expected = (32 - burst) / rate
    assert expected - 0.15 <= span <= 1.4 * expected


def test_window_check_detects_an_unlimited_run():
    lim = RateLimiter("unlimited", 0)
    _, starts = run_threads(lim, threads=8, calls=4)
    assert lim.stats.waits == 0
    assert worst_window_excess(starts, 20.0, 1.0, SLACK) > 0


def test_tokens_show_the_bucket_level():
    clock = [100.0]
    limiter = RateLimiter("t", rate=2, burst=4, clock=lambda: clock[0],
                          sleep=lambda s: None)
    assert limiter.tokens() == 4
    for _ in range(3):
        assert limiter.acquire(block=False) >= 0
    assert limiter.tokens() == pytest.approx(1)
    clock[0] += 1.0          # refills 2 tokens per second
    assert limiter.tokens() == pytest.approx(3)
    assert RateLimiter("u", rate=0).tokens() == float("inf")


def test_background_call_alone_takes_slots_at_the_rate():
    lim, clock = limiter(2.0)
    for _ in range(3):
        lim.acquire(background=True)
    assert clock.now == pytest.approx(101.0)


def test_background_calls_yield_every_slot_a_caller_waits_for():
    # Four callers make 20 calls at 20/s while a background thread wants
    # 10 calls: the callers' calls take every slot while they wait; the
    # background's follow (one may slip in before the first caller waits).
    lim = RateLimiter("bg", 20.0)
    stamps: list[tuple[str, float]] = []
    stamp_lock = threading.Lock()
    go = threading.Event()

    def call(kind: str, n: int, background: bool) -> None:
        go.wait(10)
        for _ in range(n):
            lim.acquire(background=background)
            with stamp_lock:
                stamps.append((kind, time.monotonic()))

    threads = [threading.Thread(target=call, args=("fg", 5, False))
               for _ in range(4)]
    threads.append(threading.Thread(target=call, args=("bg", 10, True)))
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    order = [kind for kind, _ in sorted(stamps, key=lambda s: s[1])]
    last_fg = max(i for i, kind in enumerate(order) if kind == "fg")
    assert order[:last_fg + 1].count("bg") <= 1
    assert order.count("bg") == 10
    starts = [t for _, t in stamps]
    assert worst_window_excess(starts, 20.0, 1.0, SLACK) <= 0


# -- set_share: a launcher's part of an account's rate ----------------------

def test_set_share_spaces_calls_at_the_share_of_the_rate():
    lim, clock = limiter(6.0)
    lim.set_share(1 / 3)
    assert lim.rate == pytest.approx(2.0)
    assert lim.configured_rate == 6.0
    starts = starts_of(lim, clock, 5)
    assert [b - a for a, b in zip(starts, starts[1:])] == \
        pytest.approx([0.5] * 4)
    lim.set_share(1.0)
    starts = starts_of(lim, clock, 3)
    assert starts[2] - starts[1] == pytest.approx(1 / 6)


def test_set_share_keeps_a_back_off_in_proportion():
    lim, clock = limiter(6.0)
    lim.throttled()
    assert lim.effective_rate == pytest.approx(3.0)
    lim.set_share(0.5)
    assert lim.rate == pytest.approx(3.0)
    assert lim.effective_rate == pytest.approx(1.5)
    assert lim.min_rate == pytest.approx(0.3)
    for _ in range(100):
        lim.succeeded()
    assert lim.effective_rate == pytest.approx(3.0)   # recovers to the share


def test_set_share_refuses_a_share_outside_0_1_and_ignores_unlimited():
    lim, _ = limiter(6.0)
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="share"):
            lim.set_share(bad)
    free, _ = limiter(0.0)
    free.set_share(0.5)
    assert free.rate == 0.0 and free.effective_rate == 0.0


def test_waiting_counts_the_callers_queued_for_a_slot():
    lim = RateLimiter("test", rate=2.0)
    lim.acquire()
    t = threading.Thread(target=lim.acquire)
    t.start()
    deadline = time.monotonic() + 5
    while not lim.waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    assert lim.waiting == 1
    t.join()
    assert lim.waiting == 0
