"""Batcher, the create use: keys, calls on a worker pool, limiter-first
collection, adaptive call sizes, the refusal gate, cancellation."""

from __future__ import annotations

import threading
import time

import pytest

from nodepool.driver import callsize, errors
from nodepool.driver.batcher import NO_RESEND, Batcher, BatchOptions
from nodepool.driver.callsize import AdaptiveSize
from nodepool.driver.createpool import CreatePool
from nodepool.driver.ratelimit import RateLimiter


class Sender:
    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, items):
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.calls.append(list(items))
        return [f"result-{i}" for i in items]


@pytest.fixture
def pool():
    p = CreatePool("t", 4)
    yield p
    p.shutdown(wait=False)


def make(pool, send, limiter=None, on_signal=None, max_items=50, **kw):
    sizing = AdaptiveSize("t", max_items, on_signal=on_signal)
    b = Batcher("t", send, BatchOptions(
        max_items=max_items, resend=NO_RESEND,
        limiter=limiter or RateLimiter("t", 0), workers=pool,
        sizing=sizing, **kw))
    b.start()
    return b


def warm(b, send, *keys):
    """Have the cloud answer one call of two launches of each key fully
    (a new key's first launches are spread over several calls)."""
    for key in keys:
        for f in [b.add(-1 - i, key) for i in range(3)]:
            f.result(5)
        assert b.sizing.proven(key)
    with send.lock:
        send.calls.clear()


def test_same_key_shares_one_call_and_gets_own_results(pool):
    send = Sender()
    b = make(pool, send, idle_timeout=0.05)
    try:
        warm(b, send, "k")
        futures = [b.add(i, "k") for i in range(5)]
        assert [f.result(5) for f in futures] == \
            [f"result-{i}" for i in range(5)]
        assert send.calls == [[0, 1, 2, 3, 4]]
    finally:
        b.stop(flush=False)


def test_keys_never_mix(pool):
    send = Sender()
    b = make(pool, send, idle_timeout=0.05)
    try:
        warm(b, send, "a", "b")
        fa = [b.add(i, "a") for i in range(3)]
        fb = [b.add(i, "b") for i in range(10, 12)]
        for f in fa + fb:
            f.result(5)
        assert sorted(send.calls) == [[0, 1, 2], [10, 11]]
    finally:
        b.stop(flush=False)


def test_max_items_splits(pool):
    send = Sender()
    b = make(pool, send, idle_timeout=1.0, max_wait=0.05, max_items=3)
    try:
        warm(b, send, "k")
        futures = [b.add(i, "k") for i in range(7)]
        for f in futures:
            f.result(5)
        assert sorted(len(c) for c in send.calls) == [1, 3, 3]
    finally:
        b.stop(flush=False)


def test_a_new_key_is_spread_over_calls_of_a_quarter_of_the_queue():
    # Nothing known of the key yet: 30 queued launches go as a quarter of
    # the queue each -- a zone that starts one instance per call serves
    # eight of them after the first latency instead of one.
    gate = threading.Event()
    send = Sender(gate)
    pool = CreatePool("t", 16)         # every call in flight at once
    b = Batcher("t", send, BatchOptions(
        max_items=50, idle_timeout=10.0, max_wait=10.0, resend=NO_RESEND,
        limiter=RateLimiter("t", 0), workers=pool,
        sizing=AdaptiveSize("t", 50)))
    try:
        futures = [b.add(i, "k") for i in range(30)]
        b.start()           # stop(flush) below is not needed: all go now
        b._cond.acquire()
        try:
            group = b._groups["k"]
            group.entries[0] = group.entries[0]._replace(added=-1e9)
            b._cond.notify()
        finally:
            b._cond.release()
        # Every launch is taken before any answer comes back (polled: a
        # waiter on the batcher's condition would steal its wake-ups).
        deadline = time.monotonic() + 5
        while b._groups and time.monotonic() < deadline:
            gate.wait(0.01)
        assert not b._groups
        gate.set()
        for f in futures:
            f.result(5)
        assert sorted((len(c) for c in send.calls), reverse=True) == \
            [8, 6, 4, 3, 3, 2, 2, 2]
        assert sorted(i for c in send.calls for i in c) == list(range(30))
        # Fully answered: from now on the key's launches share one call.
        assert b.sizing.proven("k")
    finally:
        b.stop(flush=False)
        pool.shutdown(wait=False)


def test_a_partial_answer_makes_the_key_unproven_again(pool):
    def send(items):
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    b = make(pool, send, idle_timeout=0.01)
    try:
        b.sizing.prove("k")
        futures = [b.add(i, "k") for i in range(4)]
        assert futures[0].result(5) == 0
        for f in futures[1:]:
            with pytest.raises(errors.Unfulfilled):
                f.result(5)
        assert not b.sizing.proven("k")
        assert b.sizing.learned() == {"k": 1}
        assert b.sizing.partial == 1
    finally:
        b.stop(flush=False)


def test_launches_arriving_while_waiting_for_the_limiter_join(pool):
    # One slot per 0.5 s: the first call takes the slot at once, the
    # second waits for it and by then everything queued meanwhile joins.
    limiter = RateLimiter("t", 2.0)
    send = Sender()
    b = make(pool, send, limiter=limiter, idle_timeout=0.01)
    try:
        first = b.add(0, "k")
        first.result(5)
        futures = []
        for i in range(1, 6):
            futures.append(b.add(i, "k"))
        for f in futures:
            f.result(5)
        assert send.calls[0] == [0]
        assert sum(len(c) for c in send.calls[1:]) == 5
        assert len(send.calls) <= 3
        assert limiter.stats.calls == len(send.calls)
    finally:
        b.stop(flush=False)


def test_cancelled_launch_is_left_out(pool):
    gate = threading.Event()
    send = Sender(gate)
    b = make(pool, send, idle_timeout=0.2)
    try:
        keep = b.add(1, "k")
        drop = b.add(2, "k")
        assert drop.cancel()
        gate.set()
        assert keep.result(5) == "result-1"
        assert send.calls == [[1]]
    finally:
        b.stop(flush=False)


def test_send_failure_reaches_every_launch_without_a_resend(pool):
    calls = []

    def send(items):
        calls.append(list(items))
        raise RuntimeError("boom")

    b = make(pool, send, idle_timeout=0.01)
    try:
        futures = [b.add(i, "k") for i in range(2)]
        for f in futures:
            with pytest.raises(RuntimeError):
                f.result(5)
        assert calls == [[0, 1]]
    finally:
        b.stop(flush=False)


def test_per_item_outcomes(pool):
    def send(items):
        return [i if i % 2 else ValueError(i) for i in items]

    b = make(pool, send, idle_timeout=0.01)
    try:
        futures = [b.add(i, "k") for i in range(4)]
        assert futures[1].result(5) == 1
        with pytest.raises(ValueError):
            futures[0].result(5)
    finally:
        b.stop(flush=False)


def test_stop_without_flush_cancels_queued_launches(pool):
    b = make(pool, Sender(), idle_timeout=10.0, max_wait=10.0)
    future = b.add(1, "k")
    b.stop(flush=False)
    assert future.cancelled()
    with pytest.raises(RuntimeError):
        b.add(2, "k")


def test_stop_with_flush_sends_every_key_through_the_pool(pool):
    send = Sender()
    b = make(pool, send, idle_timeout=10.0, max_wait=10.0, max_items=2)
    futures = [b.add(i, key) for key in "ab" for i in range(3)]
    b.stop()
    assert [f.result(5) for f in futures] == \
        [f"result-{i}" for _ in "ab" for i in range(3)]


def test_a_shut_down_pool_cancels_the_keys_launches():
    pool = CreatePool("t", 1)
    b = make(pool, Sender(), idle_timeout=0.01)
    pool.shutdown(wait=False)
    try:
        future = b.add(1, "k")
        deadline = time.monotonic() + 5
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)    # polled: the batcher's thread cancels it
        assert future.cancelled()
    finally:
        b.stop(flush=False)


def test_repeated_partial_answers_are_a_capacity_signal(pool):
    # Every call starts one instance: once SHORT_AFTER launches in a row
    # were left unstarted (here: one per call of two) the key is reported
    # short, once; a full answer of two reports it ample again.
    full = threading.Event()
    signals: list[tuple] = []

    def send(items):
        if full.is_set():
            return list(items)
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    b = make(pool, send, idle_timeout=0.01,
             on_signal=lambda *a: signals.append(a))
    try:
        for _ in range(callsize.SHORT_AFTER + 1):
            first, second = b.add(0, "k"), b.add(1, "k")   # one call
            assert first.result(5) == 0
            with pytest.raises(errors.Unfulfilled):
                second.result(5)
            b.sizing._sizes.pop("k", None)        # ask for two again
        assert [(key, short) for key, short, _ in signals] == [("k", True)]
        assert "in a row not started" in signals[0][2]
        full.set()
        for f in [b.add(i, "k") for i in range(2)]:
            f.result(5)
        assert [(key, short) for key, short, _ in signals] == \
            [("k", True), ("k", False)]
    finally:
        b.stop(flush=False)


def test_one_call_that_starts_one_of_ten_is_a_capacity_signal(pool):
    signals: list[tuple] = []

    def send(items):
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    sizing = AdaptiveSize("t", 50, on_signal=lambda *a: signals.append(a))
    sizing.prove("k")                      # the whole queue in one call
    b = Batcher("t", send, BatchOptions(
        idle_timeout=0.01, resend=NO_RESEND, workers=pool, sizing=sizing))
    b.start()
    try:
        futures = [b.add(i, "k") for i in range(10)]
        assert futures[0].result(5) == 0
        assert [(k, short) for k, short, _ in signals] == [("k", True)]
        assert "9 launches" in signals[0][2]
    finally:
        b.stop(flush=False)


def test_launches_of_an_unavailable_offering_are_not_sent(pool):
    # The launcher learned (here, elsewhere) that the offering is out:
    # queued launches fail with its reason, no call is made, no slot taken.
    send = Sender()
    limiter = RateLimiter("t", 0)
    refused = {"k": errors.CapacityError(
        "offering subnet-1/t3.micro unavailable until ...")}
    b = make(pool, send, limiter=limiter, idle_timeout=0.01,
             refusal=refused.get)
    try:
        futures = [b.add(i, "k") for i in range(30)]
        other = [b.add(i, "j") for i in range(2)]
        for f in futures:
            with pytest.raises(errors.CapacityError, match="unavailable"):
                f.result(5)
        for f in other:
            f.result(5)
        assert sorted(i for c in send.calls for i in c) == [0, 1]
        assert limiter.stats.calls == len(send.calls)
    finally:
        b.stop(flush=False)


def test_a_refused_call_fails_what_is_queued_of_its_key(pool):
    gate = threading.Event()
    calls: list[list] = []

    def send(items):
        calls.append(list(items))
        gate.wait(5)
        return [errors.CapacityError("InsufficientInstanceCapacity")] * \
            len(items)

    sizing = AdaptiveSize("t", 2)
    sizing.prove("k")
    b = Batcher("t", send, BatchOptions(
        max_items=2, idle_timeout=0.01, resend=NO_RESEND, workers=pool,
        sizing=sizing, refused_by=(errors.QuotaError,)))
    b.start()
    try:
        first = [b.add(i, "k") for i in range(2)]
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            gate.wait(0.01)
        # Queued while the refused call is in flight (the next flush may
        # already wait for its slot: at most one more call goes out).
        rest = [b.add(i, "k") for i in range(2, 30)]
        gate.set()
        for f in first + rest:
            with pytest.raises(errors.CapacityError):
                f.result(5)
        assert len(calls) <= 2
    finally:
        b.stop(flush=False)


def test_a_failing_refusal_check_does_not_stop_the_call(pool):
    def refusal(key):
        raise RuntimeError("board broken")

    send = Sender()
    b = make(pool, send, idle_timeout=0.01, refusal=refusal)
    try:
        assert b.add(1, "k").result(5) == "result-1"
    finally:
        b.stop(flush=False)


def test_the_batcher_measures_how_long_its_calls_take():
    now = [100.0]
    durations = iter([1.5, 0.5])

    def send(items):
        now[0] += next(durations)
        return list(items)

    b = Batcher("t", send, BatchOptions(max_items=1, idle_timeout=0.0,
                                        resend=NO_RESEND),
                clock=lambda: now[0])
    assert b.stats.call_seconds is None
    b.start()
    try:
        assert b.add("a").result(5) == "a"
        assert b.stats.call_seconds == pytest.approx(1.5)
        assert b.add("b").result(5) == "b"
        # A moving average: the latest call weighs 0.3.
        assert b.stats.call_seconds == pytest.approx(1.5 + 0.3 * (0.5 - 1.5))
    finally:
        b.stop()
