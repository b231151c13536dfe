"""CreatePool and create_pool_size, with real threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from nodepool.driver.createpool import (UNLIMITED_WORKERS, CreatePool, IdleSurplus,
                                        create_pool_size)
from nodepool.driver.ratelimit import RateLimiter

WAIT = 10  # seconds: generous bound on every condition wait


@pytest.mark.parametrize("rate,latency,cap,expected", [
    (10, 0.3, 64, 5),       # ceil(3 * 1.25) + 1
    (2, 1.5, 64, 5),
    (0.01, 1.5, 64, 2),
    (100, 1.5, 64, 64),     # bounded
    (100, 1.5, 8, 8),
    (0, 1.5, 64, UNLIMITED_WORKERS),
    (0, 1.5, 4, 4),
])
def test_pool_size(rate, latency, cap, expected):
    assert create_pool_size(rate, latency, cap) == expected


@pytest.mark.parametrize("rate", [0.5, 1, 2, 5, 10, 20, 40])
def test_pool_size_makes_rate_reachable(rate):
    # Upstream's fixed 8 threads manage 8 / 1.5 s = 5.3 calls/s at most.
    workers = create_pool_size(rate, latency=1.5)
    assert workers / 1.5 >= rate


def test_results_and_exceptions_arrive_in_futures():
    pool = CreatePool("p", 2)

    def boom():
        raise ValueError("cloud says no")

    bad = pool.submit(boom)
    good = pool.submit(lambda a, b=0: a + b, 2, b=3)
    assert good.result(WAIT) == 5
    with pytest.raises(ValueError, match="cloud says no"):
        bad.result(WAIT)
    assert pool.submit(lambda: "still working").result(WAIT) == "still working"
    pool.shutdown()


def test_submit_never_blocks_and_threads_are_bounded_and_named():
    pool = CreatePool("prov", 2)
    release = threading.Event()
    started = threading.Semaphore(0)
    names: set[str] = set()

    def call():
        names.add(threading.current_thread().name)
        started.release()
        release.wait(WAIT)

    t0 = time.monotonic()
    futures = [pool.submit(call) for _ in range(10)]
    assert time.monotonic() - t0 < 0.5  # every worker is busy, yet no wait
    assert started.acquire(timeout=WAIT) and started.acquire(timeout=WAIT)
    assert pool.busy == 2 and pool.queued == 8
    release.set()
    for f in futures:
        f.result(WAIT)
    assert names == {"prov-create-0", "prov-create-1"}
    assert pool.busy == 0 and pool.queued == 0
    pool.shutdown()


def test_shutdown_cancels_pending_and_finishes_running():
    pool = CreatePool("p", 1)
    release = threading.Event()
    running = threading.Event()

    def call():
        running.set()
        release.wait(WAIT)
        return "created"

    first = pool.submit(call)
    pending = [pool.submit(call) for _ in range(3)]
    assert running.wait(WAIT)
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    for f in pending:
        with pytest.raises(CancelledError):
            f.result(WAIT)
    assert not first.done()  # in flight: shutdown waits for it
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert first.result(0) == "created"
    assert not any(t.name.startswith("p-create") for t in threading.enumerate())


def test_lifecycle_refuses_to_run_twice():
    pool = CreatePool("p", 2)
    pool.start()
    assert sum(t.name.startswith("p-create-") for t in threading.enumerate()) == 2
    with pytest.raises(RuntimeError):
        pool.start()
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(print)
    with pytest.raises(ValueError):
        CreatePool("p", 0)


def achieved_rate(workers: int, calls: int, rate: float, latency: float) -> float:
    """Start rate of ``calls`` rate-limited fake cloud calls of ``latency`` s."""
    limiter = RateLimiter("cloud", rate)
    pool = CreatePool("rate", workers)
    starts: list[float] = []

    def fake_create():
        with limiter:
            starts.append(time.monotonic())
        time.sleep(latency)  # the cloud call itself

    futures = [pool.submit(fake_create) for _ in range(calls)]
    for f in futures:
        f.result(WAIT)
    pool.shutdown()
    return (calls - 1) / (max(starts) - min(starts))


def test_sized_pool_reaches_the_configured_rate():
    # Measured against what the limiter itself delivers here and now (a pool
    # with a thread per call), so a loaded machine's late wake-ups, which
    # slow both alike, do not count against the pool's size.
    workers = create_pool_size(10, latency=0.3)
    ceiling = achieved_rate(20, 20, rate=10, latency=0.3)
    assert achieved_rate(workers, 20, rate=10, latency=0.3) >= 0.9 * ceiling


def test_undersized_pool_cannot_reach_the_rate():
    # The contrast that makes the test above meaningful: 2 threads of 0.3 s
    # calls top out near 6.7 calls/s.
    ceiling = achieved_rate(8, 8, rate=10, latency=0.3)
    assert achieved_rate(2, 8, rate=10, latency=0.3) < 0.9 * ceiling


def _wait_until(predicate, timeout=WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)    # poll interval of the condition, bounded
    return True


def test_idle_workers_retire_after_a_burst_and_come_back_on_demand():
    # A burst of 30 calls needs 8 workers at once; once they have been idle
    # for the timeout they end, and the next call starts one again.
    pool = CreatePool("prov", 8, idle_timeout=0.2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def call():
        started.release()
        release.wait(WAIT)
        return threading.current_thread().name

    futures = [pool.submit(call) for _ in range(30)]
    for _ in range(8):
        assert started.acquire(timeout=WAIT)
    assert pool.threads == 8 and pool.busy == 8
    release.set()
    assert len({f.result(WAIT) for f in futures}) == 8
    assert _wait_until(lambda: pool.threads == 0)
    assert pool.submit(lambda: 42).result(WAIT) == 42    # on demand again
    assert pool.threads == 1
    pool.shutdown()
    assert pool.threads <= 1


def test_a_worker_does_not_retire_while_calls_are_queued():
    # One worker, calls queued behind a slow one: the worker's idle timeout
    # never ends it with work waiting, and every call runs.
    pool = CreatePool("prov", 1, idle_timeout=0.05)
    done = [pool.submit(time.sleep, 0.1)] + [
        pool.submit(lambda i=i: i) for i in range(20)]
    assert [f.result(WAIT) for f in done[1:]] == list(range(20))
    pool.shutdown()


def test_idle_surplus_is_the_fewest_idle_seen_over_a_window():
    now = [0.0]
    surplus = IdleSurplus(60.0, clock=lambda: now[0])
    for idle, at in [(7, 1.0), (5, 20.0), (6, 59.0)]:
        now[0] = at
        assert surplus.took(idle) == 0          # the window is not over
    now[0] = 60.0
    assert surplus.took(9) == 5                 # never fewer than 5 idle
    now[0] = 61.0
    assert surplus.took(0) == 0                 # a new window began
    now[0] = 121.0
    assert surplus.took(3) == 0                 # it saw a moment at 0


def test_a_pool_grown_for_a_burst_shrinks_under_a_steady_trickle():
    # After a burst needing 8 workers, calls come one at a time, quicker
    # than the idle timeout: the workers take turns, so none waits out the
    # timeout, yet 7 of them are never needed at once -- they end.
    pool = CreatePool("prov", 8, idle_timeout=0.5)
    release = threading.Event()
    started = threading.Semaphore(0)

    def call():
        started.release()
        release.wait(WAIT)
    burst = [pool.submit(call) for _ in range(8)]
    for _ in range(8):
        assert started.acquire(timeout=WAIT)
    release.set()
    for f in burst:
        f.result(WAIT)
    names = set()
    deadline = time.monotonic() + WAIT
    while pool.threads > 1 and time.monotonic() < deadline:
        names.add(pool.submit(lambda: threading.current_thread().name
                              ).result(WAIT))
    assert pool.threads == 1
    assert len(names) > 1        # the trickle did go round the workers
    assert pool.submit(lambda: 42).result(WAIT) == 42
    pool.shutdown()


def test_a_pool_names_its_threads_by_role():
    pool = CreatePool("prov", 1, role="io")
    assert pool.submit(lambda: threading.current_thread().name
                       ).result(WAIT) == "prov-io-0"
    pool.shutdown()
