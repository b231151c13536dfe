"""The cleanup worker's removal of old request lock directories
(``CleanupWorker.cleanup_request_locks``) on a real ZooKeeper, with an
injected wall clock: each directory is asked for its age about once, not
on every pass (there are as many as requests of the last eight hours)."""

from __future__ import annotations

import collections
import time
from types import SimpleNamespace

import pytest

from nodepool.launcher import cleanup
from nodepool.launcher.cleanup import LOCK_DIR_MAX_AGE, CleanupWorker
from nodepool.zk import ZooKeeper, ZooKeeperClient
from nodepool.zk.paths import REQUEST_LOCKS, request_lock_path
from nodepool.zk.request import NodeRequest
from tests.functional.launcher.helpers import wait_for
from tests.functional.zk.conftest import config_for, zk_factory  # noqa: F401

pytestmark = pytest.mark.functional


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(zk):
    client = ZooKeeperClient.from_config(config_for(zk, False))
    client.connect()
    api = ZooKeeper(client, enable_cache=False)
    yield api
    client.disconnect()


def count_exists(api) -> collections.Counter:
    sent: collections.Counter = collections.Counter()
    original = api.kazoo._call

    def counting(request, async_object):
        sent[type(request).__name__] += 1
        return original(request, async_object)

    api.kazoo._call = counting
    return sent


def make_dirs(api, first: int, count: int) -> list[str]:
    ids = [f"200-{i:010d}" for i in range(first, first + count)]
    for request_id in ids:
        api.kazoo.create(request_lock_path(request_id), makepath=True)
    return ids


def test_lock_dirs_are_asked_their_age_once_and_removed_when_old(api):
    clock = Clock()
    worker = CleanupWorker(SimpleNamespace(zk=api), clock=clock)
    old = make_dirs(api, 0, 30)
    live = NodeRequest(node_types=["x"])
    api.submit_request(live)
    api.lock_request(live)
    api.unlock_request(live)
    sent = count_exists(api)
    worker.cleanup_request_locks()
    assert sent["Exists"] == 31        # first listing: every age unknown
    new = make_dirs(api, 100, 30)
    sent.clear()
    for _ in range(3):
        worker.cleanup_request_locks()
        clock.now += 60
    # The new ones appeared after the first listing: younger than it.
    assert sent["Exists"] == 0, sent
    assert len(api.request_lock_dir_ids()) == 61
    clock.now += LOCK_DIR_MAX_AGE
    worker.cleanup_request_locks()
    # All may be old now: asked, and removed unless the request lives.
    assert api.request_lock_dir_ids() == [live.id]
    assert api.kazoo.exists(request_lock_path(old[0])) is None
    assert api.kazoo.exists(request_lock_path(new[0])) is None
    assert api.kazoo.exists(REQUEST_LOCKS) is not None


def test_a_first_pass_asks_a_bounded_number_of_ages(api, monkeypatch):
    # A launcher starting next to many old directories asks their ages
    # over its first passes, LOCK_DIR_ASKS per pass, not all at once; the
    # old ones are removed as they are found old.
    monkeypatch.setattr(cleanup, "LOCK_DIR_ASKS", 20)
    clock = Clock()
    old = make_dirs(api, 0, 50)
    clock.now += LOCK_DIR_MAX_AGE + 60      # all of them 8 hours old
    worker = CleanupWorker(SimpleNamespace(zk=api), clock=clock)
    sent = count_exists(api)
    asked, left = [], []
    for _ in range(4):
        sent.clear()
        worker.cleanup_request_locks()
        asked.append(sent["Exists"])
        left.append(len(api.request_lock_dir_ids()))
    assert asked == [20, 20, 10, 0], asked
    assert left == [30, 10, 0, 0], left
    assert api.kazoo.exists(request_lock_path(old[-1])) is None


def test_empty_dirs_of_gone_requests_go_on_the_next_pass(zk_factory):
    """Thirty requests served and deleted (as Zuul deletes them) leave
    thirty empty lock directories: one pass removes them, without asking
    any its age.  The directory of a gone request whose lock is still
    held, and those of live requests, stay (the held one until its eight
    hours, as before)."""
    api, zuul = zk_factory(), zk_factory()
    clock = Clock()
    worker = CleanupWorker(SimpleNamespace(zk=api), clock=clock)
    served = [NodeRequest(node_types=["x"]) for _ in range(30)]
    held, live = NodeRequest(node_types=["x"]), NodeRequest(node_types=["x"])
    for request in (*served, held, live):
        zuul.submit_request(request)
        api.lock_request(request)
    for request in (*served, live):
        api.unlock_request(request)
    for request in (*served, held):
        zuul.delete_request(request)

    wait_for(lambda: not any(api.request_may_exist(r.id)
                             for r in (*served, held)),
             what="the cache sees the deletions")
    assert len(api.request_lock_dir_ids()) == 32
    sent = count_exists(api)
    worker.cleanup_request_locks()
    assert sorted(api.request_lock_dir_ids()) == sorted([held.id, live.id])
    assert sent["Delete"] == 31 and sent["Exists"] == 2, sent
    assert api.kazoo.get_children(request_lock_path(held.id))  # still held
    assert set(worker._lock_dirs) == {held.id, live.id}
    # Eight hours on, the held lock's directory goes too (upstream's rule);
    # the live request keeps its own.
    api.unlock_request(held)
    api.lock_request(live)
    clock.now += LOCK_DIR_MAX_AGE + 60
    worker.cleanup_request_locks()
    assert api.request_lock_dir_ids() == [live.id]
    assert api.kazoo.get_children(request_lock_path(live.id))
