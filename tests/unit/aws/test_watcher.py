"""InstanceWatcher: one poll for every id in flight, cheap status first."""

from __future__ import annotations

import threading

from nodepool.driver import errors
from nodepool.driver.aws.watcher import InstanceWatcher


def _wait(predicate, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError("condition not met")


class Cloud:
    """Instance records by id; status and describe callables over them."""

    def __init__(self):
        self.records: dict[str, dict] = {}
        self.describe_calls: list[list[str]] = []
        self.status_calls: list[list[str]] = []
        self.invisible: set[str] = set()     # ids status does not know yet

    def add(self, iid, state="pending"):
        self.records[iid] = {"InstanceId": iid, "State": {"Name": state},
                             "PrivateIpAddress": "10.0.0.1"}

    def describe(self, filters):
        ids = filters[0]["Values"]
        self.describe_calls.append(list(ids))
        return [dict(self.records[i]) for i in ids if i in self.records]

    def status(self, ids):
        self.status_calls.append(list(ids))
        if any(i not in self.records or i in self.invisible for i in ids):
            raise errors.NotFoundError("InvalidInstanceID.NotFound")
        return {i: self.records[i]["State"]["Name"] for i in ids}


def watcher(cloud, status=True, **kw):
    w = InstanceWatcher("t", cloud.describe,
                        cloud.status if status else None,
                        interval=kw.pop("interval", 0.02), min_gap=0.0, **kw)
    w.start()
    return w


def test_nothing_watched_no_calls():
    cloud = Cloud()
    w = watcher(cloud)
    try:
        threading.Event().wait(0.1)
        assert cloud.describe_calls == cloud.status_calls == []
    finally:
        w.stop()


def test_filtered_describe_without_status():
    cloud = Cloud()
    cloud.add("i-1", "running")
    w = watcher(cloud, status=False)
    try:
        w.watch("i-1")
        w.watch("i-2")
        _wait(lambda: w.lookup("i-2").fresh)
        assert w.lookup("i-1").record["PrivateIpAddress"] == "10.0.0.1"
        assert w.lookup("i-2").record is None
        assert any(sorted(c) == ["i-1", "i-2"] for c in cloud.describe_calls)
    finally:
        w.stop()


def test_full_record_fetched_once_when_running():
    cloud = Cloud()
    cloud.add("i-1")
    w = watcher(cloud)
    try:
        w.watch("i-1")
        _wait(lambda: w.lookup("i-1").fresh)
        assert w.lookup("i-1").record == {"InstanceId": "i-1",
                                          "State": {"Name": "pending"}}
        described = len(cloud.describe_calls)
        cloud.records["i-1"]["State"]["Name"] = "running"
        _wait(lambda: w.lookup("i-1").record["State"]["Name"] == "running")
        assert w.lookup("i-1").record["PrivateIpAddress"] == "10.0.0.1"
        polls = len(cloud.status_calls)
        _wait(lambda: len(cloud.status_calls) > polls + 3)
        assert len(cloud.describe_calls) == described + 1
    finally:
        w.stop()


def test_unknown_new_id_falls_back_to_filtered_describe():
    cloud = Cloud()
    cloud.add("i-1", "running")
    cloud.invisible.add("i-1")
    w = watcher(cloud)
    try:
        w.watch("i-1")
        _wait(lambda: w.lookup("i-1").record is not None)
        assert w.lookup("i-1").record["PrivateIpAddress"] == "10.0.0.1"
        assert cloud.describe_calls and cloud.status_calls
    finally:
        w.stop()


def test_failed_poll_keeps_records():
    cloud = Cloud()
    cloud.add("i-1")
    fail = threading.Event()

    def flaky(ids):
        if fail.is_set():
            raise errors.TransientError("boom")
        return cloud.status(ids)

    w = InstanceWatcher("t", cloud.describe, flaky, interval=0.02,
                        min_gap=0.0)
    w.start()
    try:
        w.watch("i-1")
        _wait(lambda: w.lookup("i-1").record is not None)
        fail.set()
        _wait(lambda: w.counts["errors"] >= 2)
        assert w.lookup("i-1").record["State"]["Name"] == "pending"
    finally:
        w.stop()


def test_unwatch_and_expiry():
    now = [0.0]
    cloud = Cloud()
    cloud.add("i-1")
    w = InstanceWatcher("t", cloud.describe, cloud.status, interval=0.02,
                        min_gap=0.0, expire=10.0, clock=lambda: now[0])
    w.watch("i-1")
    w.watch("i-2")
    w.unwatch("i-1")
    assert w.watched == 1
    now[0] = 11.0
    with w._cond:
        w._expire()
    assert w.watched == 0
