"""ResponseCache on a manual clock."""

import pytest

from nodepool.web.cache import ResponseCache


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def builder(counter: list):
    def build():
        counter.append(1)
        return f"body {len(counter)}".encode(), "text/plain"
    return build


def test_reused_within_ttl_then_rebuilt():
    clock = Clock()
    cache = ResponseCache(1.0, clock)
    calls: list = []
    first = cache.get("k", builder(calls))
    clock.now += 0.99
    assert cache.get("k", builder(calls)) is first
    clock.now += 0.01
    second = cache.get("k", builder(calls))
    assert second.body == b"body 2"
    assert second.generated == 1001.0 and first.generated == 1000.0
    assert len(calls) == 2


def test_keys_are_separate():
    cache = ResponseCache(1.0, Clock())
    calls: list = []
    a = cache.get(("/node-list", "", "json"), builder(calls))
    b = cache.get(("/node-list", "", "text"), builder(calls))
    assert a.body != b.body and len(calls) == 2


def test_a_failed_build_caches_nothing():
    cache = ResponseCache(1.0, Clock())

    def broken():
        raise RuntimeError("zookeeper gone")
    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    calls: list = []
    assert cache.get("k", builder(calls)).body == b"body 1"


def test_expired_entries_are_dropped():
    clock = Clock()
    cache = ResponseCache(1.0, clock)
    for i in range(100):
        cache.get(f"query-{i}", builder([]))
    clock.now += 5
    cache.get("new", builder([]))
    assert list(cache._entries) == ["new"]
