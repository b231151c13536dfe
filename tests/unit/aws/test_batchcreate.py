"""CreateBatcher: grouping by key, limiter-first collection, cancellation."""

from __future__ import annotations

import threading
import time

import pytest

from nodepool.driver import errors
from nodepool.driver.aws import batchcreate
from nodepool.driver.aws.batchcreate import CreateBatcher
from nodepool.driver.createpool import CreatePool
from nodepool.driver.ratelimit import RateLimiter


class Sender:
    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, items, admitted):
        assert admitted is True
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


def make(pool, send, limiter=None, **kw):
    b = CreateBatcher("t", pool, send, limiter or RateLimiter("t", 0), **kw)
    b.start()
    return b


def warm(b, send, *keys):
    """Have the cloud answer one call of two launches of each key fully
    (a new key's first launches are spread over several calls)."""
    for key in keys:
        for f in [b.add(key, -1 - i) for i in range(3)]:
            f.result(5)
        assert key in b._proven
    with send.lock:
        send.calls.clear()


def test_same_key_shares_one_call_and_gets_own_results(pool):
    send = Sender()
    b = make(pool, send, window=0.05)
    try:
        warm(b, send, "k")
        futures = [b.add("k", i) for i in range(5)]
        assert [f.result(5) for f in futures] == \
            [f"result-{i}" for i in range(5)]
        assert send.calls == [[0, 1, 2, 3, 4]]
    finally:
        b.stop()


def test_keys_never_mix(pool):
    send = Sender()
    b = make(pool, send, window=0.05)
    try:
        warm(b, send, "a", "b")
        fa = [b.add("a", i) for i in range(3)]
        fb = [b.add("b", i) for i in range(10, 12)]
        for f in fa + fb:
            f.result(5)
        assert sorted(send.calls) == [[0, 1, 2], [10, 11]]
    finally:
        b.stop()


def test_max_items_splits(pool):
    send = Sender()
    b = make(pool, send, window=1.0, max_wait=0.05, max_items=3)
    try:
        warm(b, send, "k")
        futures = [b.add("k", i) for i in range(7)]
        for f in futures:
            f.result(5)
        assert sorted(len(c) for c in send.calls) == [1, 3, 3]
    finally:
        b.stop()


def test_a_new_key_is_spread_over_halving_calls():
    # Nothing known of the key yet: 30 queued launches go as a quarter of
    # the queue each -- a zone that starts one instance per call serves
    # eight of them after the first latency instead of one.
    gate = threading.Event()
    send = Sender(gate)
    pool = CreatePool("t", 16)         # every call in flight at once
    b = make(pool, send, window=10.0, max_wait=10.0, max_items=50)
    try:
        futures = [b.add("k", i) for i in range(30)]   # max_wait: one flush
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
        assert "k" in b._proven
    finally:
        b.stop()
        pool.shutdown(wait=False)


def test_a_partial_answer_makes_the_key_unproven_again(pool):
    def send(items, admitted):
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    b = make(pool, send, window=0.01)
    try:
        b._proven.add("k")
        futures = [b.add("k", i) for i in range(4)]
        assert futures[0].result(5) == 0
        for f in futures[1:]:
            with pytest.raises(errors.Unfulfilled):
                f.result(5)
        assert "k" not in b._proven
        assert b.learned_sizes() == {"k": 1}
    finally:
        b.stop()


def test_launches_arriving_while_waiting_for_the_limiter_join(pool):
    # One slot per 0.5 s: the first call takes the slot at once, the
    # second waits for it and by then everything queued meanwhile joins.
    limiter = RateLimiter("t", 2.0)
    send = Sender()
    b = make(pool, send, limiter=limiter, window=0.01)
    try:
        first = b.add("k", 0)
        first.result(5)
        futures = []
        for i in range(1, 6):
            futures.append(b.add("k", i))
        for f in futures:
            f.result(5)
        assert send.calls[0] == [0]
        assert sum(len(c) for c in send.calls[1:]) == 5
        assert len(send.calls) <= 3
    finally:
        b.stop()


def test_cancelled_launch_is_left_out(pool):
    gate = threading.Event()
    send = Sender(gate)
    b = make(pool, send, window=0.2)
    try:
        keep = b.add("k", 1)
        drop = b.add("k", 2)
        assert drop.cancel()
        gate.set()
        assert keep.result(5) == "result-1"
        assert send.calls == [[1]]
    finally:
        b.stop()


def test_send_failure_reaches_every_launch(pool):
    def send(items, admitted):
        raise RuntimeError("boom")

    b = make(pool, send, window=0.01)
    try:
        futures = [b.add("k", i) for i in range(2)]
        for f in futures:
            with pytest.raises(RuntimeError):
                f.result(5)
    finally:
        b.stop()


def test_per_item_outcomes(pool):
    def send(items, admitted):
        return [i if i % 2 else ValueError(i) for i in items]

    b = make(pool, send, window=0.01)
    try:
        futures = [b.add("k", i) for i in range(4)]
        assert futures[1].result(5) == 1
        with pytest.raises(ValueError):
            futures[0].result(5)
    finally:
        b.stop()


def test_stop_cancels_queued_launches(pool):
    b = make(pool, Sender(), window=10.0, max_wait=10.0)
    future = b.add("k", 1)
    b.stop()
    assert future.cancelled()
    with pytest.raises(RuntimeError):
        b.add("k", 2)


def test_repeated_partial_answers_are_a_capacity_signal(pool):
    # Every call starts one instance: once SHORT_AFTER launches in a row
    # were left unstarted (here: one per call of two) the key is reported
    # short, once; a full answer of two reports it ample again.
    full = threading.Event()
    signals: list[tuple] = []

    def send(items, admitted):
        if full.is_set():
            return list(items)
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    b = CreateBatcher("t", pool, send, RateLimiter("t", 0), window=0.01,
                      on_signal=lambda *a: signals.append(a))
    b.start()
    try:
        for _ in range(batchcreate.SHORT_AFTER + 1):
            first, second = b.add("k", 0), b.add("k", 1)   # one call
            assert first.result(5) == 0
            with pytest.raises(errors.Unfulfilled):
                second.result(5)
            b._sizes.pop("k", None)        # ask for two again
        assert [(key, short) for key, short, _ in signals] == [("k", True)]
        assert "in a row not started" in signals[0][2]
        full.set()
        for f in [b.add("k", i) for i in range(2)]:
            f.result(5)
        assert [(key, short) for key, short, _ in signals] == \
            [("k", True), ("k", False)]
    finally:
        b.stop()


def test_one_call_that_starts_one_of_ten_is_a_capacity_signal(pool):
    signals: list[tuple] = []

    def send(items, admitted):
        return [items[0]] + [errors.Unfulfilled("short")] * (len(items) - 1)

    b = CreateBatcher("t", pool, send, RateLimiter("t", 0), window=0.01,
                      on_signal=lambda *a: signals.append(a))
    b._proven.add("k")                    # the whole queue in one call
    b.start()
    try:
        futures = [b.add("k", i) for i in range(10)]
        assert futures[0].result(5) == 0
        assert [(k, short) for k, short, _ in signals] == [("k", True)]
        assert "9 launches" in signals[0][2]
    finally:
        b.stop()


def test_launches_of_an_unavailable_offering_are_not_sent(pool):
    # The launcher learned (here, elsewhere) that the offering is out:
    # queued launches fail with its reason, no call is made, no slot taken.
    send = Sender()
    limiter = RateLimiter("t", 0)
    refused = {"k": "offering subnet-1/t3.micro unavailable until ..."}
    b = CreateBatcher("t", pool, send, limiter, window=0.01,
                      refusal=refused.get)
    b.start()
    try:
        futures = [b.add("k", i) for i in range(30)]
        other = [b.add("j", i) for i in range(2)]
        for f in futures:
            with pytest.raises(errors.CapacityError, match="unavailable"):
                f.result(5)
        for f in other:
            f.result(5)
        assert sorted(i for c in send.calls for i in c) == [0, 1]
        assert limiter.stats.calls == len(send.calls)
    finally:
        b.stop()


def test_a_refused_call_fails_what_is_queued_of_its_key(pool):
    gate = threading.Event()
    calls: list[list] = []

    def send(items, admitted):
        calls.append(list(items))
        gate.wait(5)
        return [errors.CapacityError("InsufficientInstanceCapacity")] * \
            len(items)

    b = CreateBatcher("t", pool, send, RateLimiter("t", 0), window=0.01,
                      max_items=2)
    b._proven.add("k")
    b.start()
    try:
        first = [b.add("k", i) for i in range(2)]
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            gate.wait(0.01)
        # Queued while the refused call is in flight (the next flush may
        # already wait for its slot: at most one more call goes out).
        rest = [b.add("k", i) for i in range(2, 30)]
        gate.set()
        for f in first + rest:
            with pytest.raises(errors.CapacityError):
                f.result(5)
        assert len(calls) <= 2
    finally:
        b.stop()
