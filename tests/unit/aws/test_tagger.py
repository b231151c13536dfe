"""Tagger: one call at a time, retries for not-yet-visible instances."""

from __future__ import annotations

import threading

from nodepool.driver import errors
from nodepool.driver.aws.tagger import Tagger


def _wait(predicate, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError("condition not met")


def test_tags_each_instance_and_retries_not_found():
    seen = []
    misses = {"i-2": 2}

    def create_tags(iid, tags):
        if misses.get(iid):
            misses[iid] -= 1
            raise errors.NotFoundError(iid)
        seen.append((iid, dict(tags)))

    tagger = Tagger("t", create_tags, retry_delay=0.01)
    tagger.start()
    try:
        tagger.add("i-1", {"Name": "np1"})
        tagger.add("i-2", {"Name": "np2"})
        _wait(lambda: tagger.tagged == 2)
        assert sorted(seen) == [("i-1", {"Name": "np1"}),
                                ("i-2", {"Name": "np2"})]
        assert tagger.stats() == {"tagged": 2, "failed": 0, "pending": 0}
    finally:
        tagger.stop()


def test_gives_up_after_attempts():
    def create_tags(iid, tags):
        raise errors.NotFoundError(iid)

    tagger = Tagger("t", create_tags, attempts=2, retry_delay=0.01)
    tagger.start()
    try:
        tagger.add("i-1", {})
        _wait(lambda: tagger.failed == 1)
        assert tagger.pending == 0
    finally:
        tagger.stop()


def test_a_throttle_or_transient_error_is_not_repeated():
    # LimitedApi already repeated the call as long as it should.
    calls = []

    def create_tags(iid, tags):
        calls.append(iid)
        raise (errors.ThrottledError if iid == "i-1" else
               errors.TransientError)(iid)

    tagger = Tagger("t", create_tags, attempts=3, retry_delay=0.01)
    tagger.start()
    try:
        tagger.add("i-1", {})
        tagger.add("i-2", {})
        _wait(lambda: tagger.failed == 2)
        assert calls == ["i-1", "i-2"] and tagger.pending == 0
    finally:
        tagger.stop()
