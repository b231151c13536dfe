"""ServerPoller: one list for all watched servers; freshness of lookups."""

from __future__ import annotations

import threading

from nodepool.driver.openstack.poller import ServerPoller

from tests.unit.openstack.helpers import server


def test_lookup_is_fresh_only_after_a_list_that_started_later(clock):
    poller = ServerPoller("t", fetch=list, clock=clock)
    poller.publish([server("a")], clock())          # before the watch
    poller.watch("b")
    assert poller.lookup("b").fresh is False
    assert poller.lookup("a").record["id"] == "a"    # any listed server
    clock.advance(0.1)
    poller.publish([server("a")], clock())
    look = poller.lookup("b")
    assert look.record is None and look.fresh is True
    poller.unwatch("b")
    assert poller.lookup("b").fresh is False


def test_older_list_never_replaces_a_newer_one(clock):
    poller = ServerPoller("t", fetch=list, clock=clock)
    poller.publish([server("new")], 10.0)
    poller.publish([server("old")], 5.0)
    assert poller.latest("new") is not None and poller.latest("old") is None


def test_snapshot_age(clock):
    poller = ServerPoller("t", fetch=list, clock=clock)
    assert poller.snapshot(5) is None
    poller.publish([server("a")], clock())
    assert [r["id"] for r in poller.snapshot(5)] == ["a"]
    clock.advance(6)
    assert poller.snapshot(5) is None


def test_thread_lists_while_servers_are_watched_and_survives_errors():
    calls = []
    listed = threading.Event()

    def fetch():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cloud hiccup")
        listed.set()
        return [server("x")]

    poller = ServerPoller("t", fetch=fetch, interval=0.01, min_gap=0.0)
    poller.start()
    try:
        assert not listed.wait(0.05)        # nothing watched: no calls
        assert calls == []
        poller.watch("x")
        assert listed.wait(5)
        assert poller.counts["errors"] == 1
        deadline = threading.Event()
        for _ in range(500):
            if poller.lookup("x").fresh:
                break
            deadline.wait(0.01)
        assert poller.lookup("x").record["id"] == "x"
    finally:
        poller.stop()


def test_forgotten_watches_expire(clock):
    poller = ServerPoller("t", fetch=list, expire=100, clock=clock)
    poller.watch("a")
    clock.advance(101)
    with poller._cond:
        poller._expire()
    assert poller.watched == 0
