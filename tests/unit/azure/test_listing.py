"""Shared listings: freshness by start time, bounded refreshes, failures."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.listing import Listing


class ManualExecutor:
    """Runs submitted calls only when the test says so."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args):
        self.calls.append((fn, args))
        return Future()

    def run_all(self):
        calls, self.calls = self.calls, []
        for fn, args in calls:
            fn(*args)


class Cloud:
    def __init__(self):
        self.items = []
        self.fetches = 0
        self.error = None

    def fetch(self):
        self.fetches += 1
        if self.error:
            raise self.error
        return [dict(i) for i in self.items]


@pytest.fixture
def parts(clock):
    cloud, executor = Cloud(), ManualExecutor()
    listing = Listing("vms", cloud.fetch, executor, interval=1.0,
                      clock=clock, items_per_second=2.0, max_interval=3.0)
    return cloud, executor, listing


def test_snapshot_needs_a_listing_started_after_the_threshold(parts, clock):
    cloud, executor, listing = parts
    cloud.items = [{"name": "VM1", "properties": {"provisioningState":
                                                   "Creating"}}]
    assert listing.snapshot(clock()) is None        # starts a refresh
    assert len(executor.calls) == 1
    assert listing.snapshot(clock()) is None        # one at a time
    assert len(executor.calls) == 1
    executor.run_all()
    snap = listing.snapshot(clock())
    assert snap.started == clock()
    assert snap.get("vm1")["name"] == "VM1"          # names are lower-cased
    clock.advance(0.1)
    answered = clock()
    assert listing.snapshot(answered) is None        # too old for this one
    assert executor.calls == []                      # interval not yet over
    clock.advance(1.0)
    assert listing.snapshot(answered) is None
    executor.run_all()
    assert listing.snapshot(answered).started >= answered


def test_interval_grows_with_the_listing(parts, clock):
    cloud, executor, listing = parts
    assert listing.interval == 1.0
    cloud.items = [{"name": f"vm{i}"} for i in range(5)]
    listing.snapshot(clock())
    executor.run_all()
    assert listing.interval == 2.5                   # 5 items at 2/s
    cloud.items = [{"name": f"vm{i}"} for i in range(50)]
    clock.advance(3)
    listing.snapshot(clock())
    executor.run_all()
    assert listing.interval == 3.0                   # capped


def test_failed_refresh_keeps_records_and_allows_retry(parts, clock):
    cloud, executor, listing = parts
    cloud.items = [{"name": "a"}]
    listing.snapshot(clock())
    executor.run_all()
    cloud.error = errors.TransientError("503")
    clock.advance(2)
    assert listing.snapshot(clock()) is None
    executor.run_all()
    assert listing.errors == 1
    assert listing.snapshot(0).get("a") is not None   # old records kept
    clock.advance(2)
    cloud.error = None
    assert listing.snapshot(clock()) is None
    executor.run_all()
    assert listing.snapshot(clock()) is not None


def test_get_blocks_for_a_fresh_listing_and_raises(parts, clock):
    cloud, executor, listing = parts
    cloud.items = [{"name": "a"}]
    assert set(listing.get(max_age=2.0)) == {"a"}
    assert cloud.fetches == 1
    clock.advance(1)
    assert set(listing.get(max_age=2.0)) == {"a"}    # cached
    assert cloud.fetches == 1
    clock.advance(5)
    cloud.error = errors.NotFoundError("gone")
    with pytest.raises(errors.NotFoundError):
        listing.get(max_age=2.0)
    listing.forget()
    cloud.error = None
    cloud.items = []
    assert listing.get(max_age=100.0) == {}


def test_get_joins_a_refresh_in_flight(clock):
    started = threading.Event()
    release = threading.Event()
    calls = []

    def fetch():
        calls.append(1)
        started.set()
        release.wait(5)
        return [{"name": "x"}]

    class Inline:
        def submit(self, fn, *args):
            threading.Thread(target=fn, args=args, daemon=True).start()

    listing = Listing("nics", fetch, Inline(), clock=clock)
    listing.snapshot(clock())
    assert started.wait(5)
    results = []
    joiner = threading.Thread(target=lambda: results.append(
        listing.get(max_age=10)))
    joiner.start()
    release.set()
    joiner.join(5)
    assert results == [{"x": {"name": "x"}}]
    assert len(calls) == 1
