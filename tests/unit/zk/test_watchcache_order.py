"""The persistent cache's ordering rules, step by step.

The server may answer a read taken before a change *after* notifying the
change (reads run beside commits).  These tests feed the cache thread's
steps by hand, in exactly such orders, which a live server produces only
now and then under load (the functional tests in
``tests/functional/zk/test_zk_watchcache.py`` cover the live protocol).
The client is a kazoo client that is never started: the cache's reads are
recorded instead of sent.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat

from nodepool.zk.watchcache import (CHANGED, CREATED, DELETED,
                                    PersistentTreeCache)

ROOT = "/nodepool/requests"


class RecordingCache(PersistentTreeCache):
    """Reads are recorded with the step they were sent at."""

    def __init__(self):
        super().__init__(KazooClient(hosts="127.0.0.1:1"), ROOT, 1, 0)
        self.sent: list[tuple[str, str, int]] = []

    def _send(self, kind, request_type, path):
        super()._send(kind, request_type, path)
        self._outbox.clear()                 # recorded, not sent
        self.sent.append((kind, path, self._step))

    def step(self, kind, path=None, value=None, exc=None, sent=0):
        self._step += 1
        return self._apply(kind, path, value, exc, sent)

    def last_sent(self, kind, path):
        return max(s for k, p, s in self.sent if (k, p) == (kind, path))


def stat(mzxid: int) -> ZnodeStat:
    return ZnodeStat(mzxid, mzxid, 0, 0, 1, 0, 0, 0, 2, 0, mzxid)


def synced(names=("a", "b")) -> RecordingCache:
    cache = RecordingCache()
    cache.step("resync", value=False)
    listing = cache.last_sent("children", ROOT)
    cache.step("children", ROOT, list(names), sent=listing)
    for name in names:
        path = f"{ROOT}/{name}"
        cache.step("data", path, (b"{}", stat(1)),
                   sent=cache.last_sent("data", path))
    return cache


def test_a_stale_listing_keeps_a_child_notified_after_it_was_sent():
    cache = synced()
    cache.step("resync", value=False)          # e.g. after a reconnection
    listing = cache.last_sent("children", ROOT)
    cache.step("event", f"{ROOT}/c", CREATED)  # created after the read ran
    cache.step("children", ROOT, ["a", "b"], sent=listing)
    assert cache.get_children(ROOT) == {"a", "b", "c"}


def test_a_stale_listing_does_not_bring_back_a_deleted_child():
    cache = synced()
    cache.step("resync", value=False)
    listing = cache.last_sent("children", ROOT)
    cache.step("event", f"{ROOT}/a", DELETED)
    cache.step("children", ROOT, ["a", "b"], sent=listing)
    assert cache.get_children(ROOT) == {"b"}
    assert not cache._tombs          # no listing in flight: none kept


def test_no_tombs_without_listings_in_flight():
    cache = synced()
    cache.step("event", f"{ROOT}/a", DELETED)
    assert not cache._tombs


def test_a_listing_forgets_children_gone_before_it_was_sent():
    cache = synced(("a", "b", "c"))
    cache.step("resync", value=False)          # deleted while disconnected
    cache.step("children", ROOT, ["a"],
               sent=cache.last_sent("children", ROOT))
    assert cache.get_children(ROOT) == {"a"}


def test_a_stale_no_node_spares_a_child_created_after_the_read():
    cache = synced()
    cache.step("resync", value=False)
    data_b = cache.last_sent("data", f"{ROOT}/b")
    cache.step("event", f"{ROOT}/b", DELETED)
    cache.step("event", f"{ROOT}/b", CREATED)  # same name again
    cache.step("data", f"{ROOT}/b", None, NoNodeError(), sent=data_b)
    assert "b" in cache.get_children(ROOT)
    # ... and the read the creation asked for fills it in.
    cache.step("data", f"{ROOT}/b", (b'{"x": 1}', stat(9)),
               sent=cache.last_sent("data", f"{ROOT}/b"))
    assert cache.get_data(f"{ROOT}/b").data == b'{"x": 1}'


def test_no_node_forgets_a_child_known_before_the_read():
    cache = synced()
    cache.step("resync", value=False)
    cache.step("data", f"{ROOT}/a", None, NoNodeError(),
               sent=cache.last_sent("data", f"{ROOT}/a"))
    assert cache.get_children(ROOT) == {"b"}


def test_an_older_read_never_replaces_newer_data():
    cache = synced()
    path = f"{ROOT}/a"
    cache.step("event", path, CHANGED)
    first = cache.last_sent("data", path)
    cache.step("event", path, CHANGED)
    cache.step("data", path, (b'{"v": 3}', stat(30)),
               sent=cache.last_sent("data", path))
    cache.step("data", path, (b'{"v": 2}', stat(20)), sent=first)
    assert cache.get_data(path).data == b'{"v": 3}'


def test_own_write_taken_only_when_it_was_the_one_change():
    cache = synced()
    path = f"{ROOT}/a"
    token = cache.expect_write(path, b'{"own": 1}', conditional=True)
    cache.step("event", path, CHANGED)
    reads = len(cache.sent)
    cache.step("settle", path, token, stat(40))
    assert cache.get_data(path).data == b'{"own": 1}'
    assert len(cache.sent) == reads            # nothing read back
    # Two changes while our write was in flight: one was not ours.
    token = cache.expect_write(path, b'{"own": 2}', conditional=True)
    cache.step("event", path, CHANGED)
    cache.step("event", path, CHANGED)
    cache.step("settle", path, token, stat(50))
    assert cache.sent[-1][:2] == ("data", path)
    assert cache.get_data(path).data == b'{"own": 1}'   # until the read
