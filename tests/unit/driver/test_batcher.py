"""Batcher with its real thread and the real clock: the delete use (own
thread, one call at a time, failed items resent alone).  The create use
(keys, a worker pool, limiter first, refusal) is in test_batcher_keys.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, wait

import pytest

from nodepool.driver import errors
from nodepool.driver.batcher import (NO_RESEND, RESEND_UNLESS_REFUSED,
                                      Batcher, BatchOptions,
                                      MissingOutcomeError)

WAIT = 10  # seconds: generous bound on every condition wait


class FakeCloud:
    """Records every executor/single call with its time and thread name."""

    def __init__(self, broken: frozenset = frozenset(),
                 batch_broken: frozenset = frozenset(),
                 raise_on_batch: BaseException | None = None) -> None:
        self.broken = broken              # fail alone and in batches
        self.batch_broken = batch_broken  # fail only inside a batch
        self.raise_on_batch = raise_on_batch
        self.batches: list[list[int]] = []
        self.times: list[float] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def executor(self, items: list[int]) -> list[object]:
        with self.lock:
            self.batches.append(list(items))
            self.times.append(time.monotonic())
            self.threads.add(threading.current_thread().name)
        if self.raise_on_batch is not None and len(items) > 1:
            raise self.raise_on_batch
        out: list[object] = []
        for i in items:
            if i in self.broken or (len(items) > 1 and i in self.batch_broken):
                out.append(ValueError(f"{i} failed"))
            else:
                out.append(i * 10)
        return out

    def singles(self) -> list[int]:
        return [b[0] for b in self.batches if len(b) == 1]


def make(cloud: FakeCloud, name: str = "test", **kw) -> Batcher[int, int]:
    b: Batcher[int, int] = Batcher(name, cloud.executor, BatchOptions(**kw))
    b.start()
    return b


def test_batches_are_capped_at_max_items():
    cloud = FakeCloud()
    b = make(cloud, max_items=50, idle_timeout=0.5, max_wait=5)
    t0 = time.monotonic()
    futures = [b.add(i) for i in range(120)]
    done, _ = wait(futures, WAIT)
    # Full batches go at once; only the remainder waits for the idle window.
    assert cloud.times[1] - t0 < 0.25 <= 0.5 <= cloud.times[2] - t0
    assert len(done) == 120
    assert [f.result() for f in futures] == [i * 10 for i in range(120)]
    assert [len(batch) for batch in cloud.batches] == [50, 50, 20]
    assert sum(cloud.batches, []) == list(range(120))
    assert list(b.stats.sizes) == [50, 50, 20]
    assert b.stats.batches == 3 and b.stats.items == 120 and b.stats.retries == 0
    assert cloud.threads == {"test-batcher"}
    b.stop()


def test_a_full_batch_wakes_a_waiting_thread():
    cloud = FakeCloud()
    b = make(cloud, max_items=5, idle_timeout=30, max_wait=30)
    futures = [b.add(0)]
    time.sleep(0.05)  # producer pace: the thread is now waiting out 30 s
    t0 = time.monotonic()
    futures += [b.add(i) for i in range(1, 5)]
    done, _ = wait(futures, 5)
    assert len(done) == 5 and cloud.times[0] - t0 < 1
    b.stop()


def test_single_item_flushes_after_idle_timeout_not_before():
    cloud = FakeCloud()
    b = make(cloud, idle_timeout=0.2, max_wait=5)
    t0 = time.monotonic()
    assert b.add(1).result(WAIT) == 10
    elapsed = cloud.times[0] - t0
    # Never before the idle window; the upper bound only shows it did not
    # wait for max_wait (5 s), with room for a loaded CI machine.
    assert 0.2 <= elapsed < 2.0
    b.stop()


def test_max_wait_bounds_a_trickle():
    # Items every 50 ms keep the 0.3 s idle window from ever passing, so
    # only max_wait can send the first batch before the trickle ends.
    cloud = FakeCloud()
    b = make(cloud, idle_timeout=0.3, max_wait=0.6)
    t0 = time.monotonic()
    futures = []
    while time.monotonic() - t0 < 1.2:
        futures.append(b.add(len(futures)))
        time.sleep(0.05)  # the producer's pace, not synchronisation
    wait(futures, WAIT)
    assert all(f.result() == i * 10 for i, f in enumerate(futures))
    first = cloud.times[0] - t0
    assert 0.6 <= first < 0.6 + 0.2
    assert len(cloud.batches) >= 2 and len(cloud.batches[0]) < len(futures)
    b.stop()


def test_partial_failure_retries_failed_ids_one_by_one():
    # 3 fails only in batches; 7 fails every time.
    cloud = FakeCloud(broken=frozenset({7}), batch_broken=frozenset({3}))
    b = make(cloud, max_items=10, idle_timeout=5)
    futures = [b.add(i) for i in range(10)]
    wait(futures, WAIT)
    assert cloud.batches[0] == list(range(10))
    assert sorted(cloud.singles()) == [3, 7]
    with pytest.raises(ValueError, match="7 failed"):
        futures[7].result()
    assert [f.result() for i, f in enumerate(futures) if i != 7] == \
        [i * 10 for i in range(10) if i != 7]
    assert b.stats.retries == 2
    b.stop()


def test_executor_raising_retries_every_item_alone():
    cloud = FakeCloud(raise_on_batch=ConnectionError("the call failed"))
    b = make(cloud, max_items=5, idle_timeout=5)
    futures = [b.add(i) for i in range(5)]
    wait(futures, WAIT)
    assert [f.result() for f in futures] == [0, 10, 20, 30, 40]
    assert cloud.batches == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]
    assert b.stats.retries == 5
    b.stop()


def test_missing_outcomes_become_explicit_errors():
    calls: list[list[int]] = []

    def short_executor(items):
        calls.append(list(items))
        return [i * 10 for i in items[:-1]]  # always drops the last one

    b = Batcher("test", short_executor,
                BatchOptions(max_items=3, idle_timeout=5))
    b.start()
    futures = [b.add(i) for i in range(3)]
    wait(futures, WAIT)
    assert calls == [[0, 1, 2], [0], [1], [2]]
    for f in futures:
        with pytest.raises(MissingOutcomeError):
            f.result()
    b.stop()


def test_single_item_batch_failure_is_not_resent():
    cloud = FakeCloud(broken=frozenset({4}))
    b = make(cloud, idle_timeout=0.05)
    with pytest.raises(ValueError, match="4 failed"):
        b.add(4).result(WAIT)
    assert cloud.batches == [[4]] and b.stats.retries == 0
    b.stop()


def test_stop_flushes_queued_items_at_once():
    cloud = FakeCloud()
    b = make(cloud, "flush", idle_timeout=30, max_wait=30)
    futures = [b.add(i) for i in range(3)]
    t0 = time.monotonic()
    b.stop()
    assert time.monotonic() - t0 < 5  # not after the 30 s windows
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 10, 20]
    assert not any(t.name == "flush-batcher" for t in threading.enumerate())


def test_stop_without_flush_cancels_queued_items():
    cloud = FakeCloud()
    b = make(cloud, idle_timeout=30, max_wait=30)
    futures = [b.add(i) for i in range(3)]
    b.stop(flush=False)
    for f in futures:
        with pytest.raises(CancelledError):
            f.result(0)
    assert cloud.batches == []


def test_stop_of_a_never_started_batcher_flushes_in_the_caller():
    cloud = FakeCloud()
    b = Batcher("idle", cloud.executor)
    future = b.add(5)
    b.stop()
    assert future.result(0) == 50
    assert cloud.threads == {threading.current_thread().name}


def test_cancelled_items_are_not_sent():
    cloud = FakeCloud()
    b = make(cloud, idle_timeout=30, max_wait=30)
    keep, drop = b.add(1), b.add(2)
    assert drop.cancel()
    b.stop()
    assert keep.result(0) == 10
    assert cloud.batches == [[1]]


def test_lifecycle_refuses_to_run_twice():
    b = make(FakeCloud())
    with pytest.raises(RuntimeError):
        b.start()
    b.stop()
    with pytest.raises(RuntimeError):
        b.stop()
    with pytest.raises(RuntimeError):
        b.add(1)
    with pytest.raises(RuntimeError):
        b.start()


def test_run_now_bypasses_the_queue():
    cloud = FakeCloud(broken=frozenset({9}))
    b = make(cloud, idle_timeout=30, max_wait=30)
    queued = b.add(1)
    assert b.run_now(2) == 20              # executor([2]) at once
    with pytest.raises(ValueError, match="9 failed"):
        b.run_now(9)
    assert cloud.batches == [[2], [9]]
    assert not queued.done()
    b.stop()
    assert queued.result(0) == 10


@pytest.mark.parametrize("error", [errors.ThrottledError("slow down"),
                                   errors.TransientError("503"),
                                   errors.CredentialError("401")])
def test_a_refused_call_is_every_items_answer_not_resent(error):
    # The delete policy: a throttle (or transient or access failure) of
    # the whole call is not resent as one call per item (that would only
    # be refused again).
    cloud = FakeCloud(raise_on_batch=error)
    b = make(cloud, max_items=5, idle_timeout=5,
             resend=RESEND_UNLESS_REFUSED)
    futures = [b.add(i) for i in range(5)]
    wait(futures, WAIT)
    for f in futures:
        with pytest.raises(type(error)):
            f.result()
    assert cloud.batches == [[0, 1, 2, 3, 4]] and b.stats.retries == 0
    b.stop()


def test_under_that_policy_other_failures_are_still_resent():
    cloud = FakeCloud(batch_broken=frozenset({2}))
    b = make(cloud, max_items=5, idle_timeout=5,
             resend=RESEND_UNLESS_REFUSED)
    futures = [b.add(i) for i in range(5)]
    wait(futures, WAIT)
    assert [f.result() for f in futures] == [0, 10, 20, 30, 40]
    assert cloud.singles() == [2]
    b.stop()


def test_no_resend_gives_each_item_its_outcome():
    cloud = FakeCloud(batch_broken=frozenset({1}))
    b = make(cloud, max_items=3, idle_timeout=5, resend=NO_RESEND)
    futures = [b.add(i) for i in range(3)]
    wait(futures, WAIT)
    with pytest.raises(ValueError, match="1 failed"):
        futures[1].result()
    assert futures[2].result() == 20
    assert cloud.batches == [[0, 1, 2]]
    b.stop()
