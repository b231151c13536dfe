"""CreateBatcher: grouping by key, limiter-first collection, cancellation."""

from __future__ import annotations

import threading

import pytest

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


def test_same_key_shares_one_call_and_gets_own_results(pool):
    send = Sender()
    b = make(pool, send, window=0.05)
    try:
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
        futures = [b.add("k", i) for i in range(7)]
        for f in futures:
            f.result(5)
        assert sorted(len(c) for c in send.calls) == [1, 3, 3]
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
