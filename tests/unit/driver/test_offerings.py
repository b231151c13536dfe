"""Offerings: the TTL rules of capacity-error records, with a fake clock."""

from __future__ import annotations

import copy
from types import SimpleNamespace

from nodepool.driver.offerings import BASE_TTL, MAX_TTL, Offerings


class Records:
    """The store's contract in memory (versions like ZooKeeper's)."""

    def __init__(self):
        self.data = {}
        self.puts = 0

    def get_offering(self, provider, key, cached=True):
        entry = self.data.get((provider, key))
        return copy.deepcopy(entry) if entry is not None else None

    def put_offering(self, offering):
        current = self.data.get((offering.provider, offering.key))
        version = None if offering.stat is None else offering.stat.version
        if (current is None) != (version is None):
            return False
        if current is not None and current.stat.version != version:
            return False
        offering.stat = SimpleNamespace(
            version=0 if current is None else current.stat.version + 1)
        self.data[(offering.provider, offering.key)] = copy.deepcopy(offering)
        self.puts += 1
        return True

    def delete_offering(self, provider, key):
        self.data.pop((provider, key), None)

    def iter_offerings(self, provider=None, cached=True):
        return [copy.deepcopy(o) for (p, _), o in self.data.items()
                if provider in (None, p)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make():
    records, clock = Records(), Clock()
    return records, clock, Offerings(records, "aws", clock=clock)


def test_first_error_blocks_for_the_base_ttl():
    records, clock, offerings = make()
    assert offerings.unavailable("sub-a/t3") is None
    written = offerings.capacity_error("sub-a/t3", "no capacity",
                                       {"east": ["small"]})
    assert written.ttl == BASE_TTL and written.strikes == 1
    assert offerings.unavailable("sub-a/t3") is not None
    assert offerings.unavailable("sub-b/t3") is None
    assert offerings.blocked("east", "small") is not None
    assert offerings.blocked("east", "large") is None
    assert offerings.blocked("west", "small") is None
    clock.now += BASE_TTL - 1
    assert offerings.unavailable("sub-a/t3") is not None
    clock.now += 1
    assert offerings.unavailable("sub-a/t3") is None
    assert offerings.blocked("east", "small") is None


def test_errors_during_the_period_change_nothing():
    records, clock, offerings = make()
    offerings.capacity_error("k", "x", {})
    puts = records.puts
    for _ in range(30):              # the rest of a burst
        assert offerings.capacity_error("k", "x", {}) is None
    assert records.puts == puts
    assert records.get_offering("aws", "k").ttl == BASE_TTL


def test_repeats_double_up_to_the_cap_and_success_resets():
    records, clock, offerings = make()
    ttls = []
    for _ in range(8):
        written = offerings.capacity_error("k", "x", {})
        ttls.append(written.ttl)
        clock.now = written.until      # retried once the period ended
    assert ttls == [min(MAX_TTL, BASE_TTL * 2 ** i) for i in range(8)]
    assert ttls[-1] == MAX_TTL
    offerings.succeeded("k")
    assert records.get_offering("aws", "k") is None
    assert offerings.capacity_error("k", "x", {}).ttl == BASE_TTL


def test_a_concurrent_write_is_read_again():
    records, clock, offerings = make()
    theirs = Records()
    theirs.data = records.data          # the same ZooKeeper, another client
    other = Offerings(theirs, "aws", clock=clock)
    real_get = records.get_offering

    def racing_get(provider, key, cached=True):
        got = real_get(provider, key, cached)
        if not cached and got is None and not records.data:
            # Another launcher records the same offering in between.
            other.capacity_error(key, "theirs", {})
        return got
    records.get_offering = racing_get
    assert offerings.capacity_error("k", "ours", {}) is None
    assert real_get("aws", "k").reason == "theirs"


def test_untracked_offerings_are_never_recorded():
    records, clock, offerings = make()
    assert offerings.capacity_error(None, "x", {}) is None
    assert offerings.unavailable(None) is None
    offerings.succeeded(None)
    assert records.data == {}


def test_short_record_launches_but_is_known_and_blocks_nothing():
    records, clock, offerings = make()
    written = offerings.short("sub-a/t3", "3 calls in a row started fewer",
                              {"east": ["small"]})
    assert written is not None and written.kind == "short"
    assert written.until == clock.now + BASE_TTL
    assert offerings.unavailable("sub-a/t3") is None    # still launches
    assert offerings.short_record("sub-a/t3") is not None
    assert offerings.blocked("east", "small") is None
    assert [r.kind for r in offerings.current()] == ["short"]
    # A second signal while it runs writes nothing.
    puts = records.puts
    assert offerings.short("sub-a/t3", "again", {"east": ["small"]}) is None
    assert records.puts == puts
    # It expires by itself.
    clock.now += BASE_TTL
    assert offerings.short_record("sub-a/t3") is None
    assert offerings.current() == []


def test_success_keeps_a_short_record_a_full_answer_clears_it():
    records, clock, offerings = make()
    offerings.short("sub-a/t3", "partial", {"east": ["small"]})
    offerings.succeeded("sub-a/t3")      # one instance per call still works
    assert offerings.short_record("sub-a/t3") is not None
    offerings.ample("sub-a/t3")
    assert offerings.short_record("sub-a/t3") is None


def test_capacity_error_replaces_a_short_record_at_the_base_ttl():
    records, clock, offerings = make()
    offerings.short("sub-a/t3", "partial", {"east": ["small"]})
    written = offerings.capacity_error("sub-a/t3", "no capacity",
                                       {"east": ["small"]})
    assert written is not None and written.kind == "unavailable"
    assert written.ttl == BASE_TTL and written.strikes == 1
    assert offerings.unavailable("sub-a/t3") is not None
    # ... and a short signal never softens an unavailable record.
    assert offerings.short("sub-a/t3", "partial", {"east": ["small"]}) is None
    assert offerings.unavailable("sub-a/t3") is not None
    offerings.ample("sub-a/t3")
    assert offerings.unavailable("sub-a/t3") is not None
