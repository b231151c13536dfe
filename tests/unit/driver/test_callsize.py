"""AdaptiveSize without a batcher: what a key's calls take after each
kind of answer."""

from __future__ import annotations

from nodepool.driver import errors
from nodepool.driver.callsize import GROW_AFTER, AdaptiveSize

SHORT = errors.Unfulfilled("not started")


def spread(sizing, key, queued):
    takes = []
    while queued:
        n = sizing.take(key, queued)
        takes.append(n)
        queued -= n
    return takes


def test_a_new_key_takes_a_quarter_of_its_queue_at_least_two():
    sizing = AdaptiveSize("t", 50)
    assert spread(sizing, "k", 30) == [8, 6, 4, 3, 3, 2, 2, 2]
    assert sizing.threshold("k") == 50


def test_a_full_answer_of_several_proves_the_key():
    sizing = AdaptiveSize("t", 50)
    sizing.learn("k", 1, ["ok"], 0)            # one tells nothing
    assert not sizing.proven("k")
    sizing.learn("k", 2, ["ok", "ok"], 0)
    assert sizing.proven("k") and sizing.take("k", 30) == 30


def test_a_partial_answer_shrinks_and_full_ones_grow_back():
    sizing = AdaptiveSize("t", 8)
    sizing.learn("k", 8, ["ok", "ok"] + [SHORT] * 6, 0)
    assert sizing.learned() == {"k": 2} and sizing.threshold("k") == 2
    assert sizing.take("k", 30) == 2
    # Full answers while launches of the key queue do not grow it.
    for _ in range(GROW_AFTER):
        sizing.learn("k", 2, ["ok", "ok"], 5)
    assert sizing.learned() == {"k": 2}
    for _ in range(GROW_AFTER):
        sizing.learn("k", 2, ["ok", "ok"], 0)
    assert sizing.learned() == {"k": 4}
    for _ in range(GROW_AFTER):
        sizing.learn("k", 4, ["ok"] * 4, 0)
    assert sizing.learned() == {}             # back to max_items
    assert sizing.partial == 1


def test_a_failing_signal_is_logged_and_the_size_still_learned(caplog):
    def broken(*args):
        raise RuntimeError("board gone")

    sizing = AdaptiveSize("t", 50, on_signal=broken)
    sizing.learn("k", 10, ["ok"] + [SHORT] * 9, 0)
    assert sizing.learned() == {"k": 1}
    assert "capacity signal failed" in caplog.text


def test_a_new_key_is_split_only_as_many_ways_as_calls_can_start_meanwhile():
    # Two and a half calls start while one is in flight: two ways.
    sizing = AdaptiveSize("t", 50, spread_over=lambda: 2.5)
    assert spread(sizing, "k", 30) == [15, 8, 4, 2, 1]
    # A scarce rate (less than one call per call's duration): the queue
    # goes whole, up to the call size.
    sizing = AdaptiveSize("t", 50, spread_over=lambda: 0.7)
    assert spread(sizing, "k", 30) == [30]
    assert spread(sizing, "k", 80) == [50, 30]
    # An unlimited rate spreads a quarter at a time, as without a hint.
    sizing = AdaptiveSize("t", 50, spread_over=lambda: float("inf"))
    assert spread(sizing, "k", 30) == [8, 6, 4, 3, 3, 2, 2, 2]


def test_a_failing_spread_hint_is_logged_and_the_queue_spread_a_quarter(
        caplog):
    def broken():
        raise ZeroDivisionError("no rate")

    sizing = AdaptiveSize("t", 50, spread_over=broken)
    assert sizing.take("k", 30) == 8
    assert "spread_over failed" in caplog.text
