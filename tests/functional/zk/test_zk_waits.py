"""Wait records (``nodepool.zk.waits``) and the pool worker's book of them
(``nodepool.launcher.waits.WaitBook``) on a real ZooKeeper: ephemeral
records in their own tree, written only when a reason changes, ``since``
kept while the kind holds, gone when the request no longer waits."""

from __future__ import annotations

import logging

import pytest

from nodepool.launcher import waits
from nodepool.launcher.quota import Verdict
from nodepool.zk import NodeRequest, RequestState
from nodepool.zk.paths import REQUESTS, request_path
from nodepool.zk.waits import RequestWait
from tests.functional.launcher.helpers import wait_for
from tests.functional.zk.counting import count_requests

ROOT = "/nodepool/request-waits"
WORKER = "host.example.org-PoolWorker.aws-main-0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(rid="100-0000000001", kind="quota", text="at quota") -> \
        RequestWait:
    return RequestWait(request=rid, worker=WORKER, kind=kind, text=text,
                       since=10.0, updated=11.0, provider="aws",
                       pool="main", hostname="host", details={"free": 0})


def put(api, wait: RequestWait, exists: bool = False) -> bool:
    outcome = []
    api.put_wait_async(wait, exists, outcome.append)
    wait_for(lambda: outcome, what="the write's outcome")
    return outcome[0]


def test_records_are_ephemeral_and_read_cached_or_not(zk_factory):
    writer, reader = zk_factory(), zk_factory()
    assert put(writer, record())
    [name] = writer.kazoo.get_children(ROOT)
    assert name == "100-0000000001:0123456789abcdef"
    assert writer.kazoo.exists(f"{ROOT}/{name}").ephemeralOwner != 0
    wait_for(lambda: reader.waits_by_request(cached=True),
             what="the reader's cache")
    [got] = reader.waits_by_request(cached=True)["100-0000000001"]
    assert (got.kind, got.text, got.since, got.details) == (
        "quota", "at quota", 10.0, {"free": 0})
    assert [w.text for w in reader.iter_waits(cached=False)] == ["at quota"]
    # A create that finds the record present sets it instead.
    assert put(writer, record(text="at quota again"))
    assert [w.text for w in reader.iter_waits(cached=False)] == [
        "at quota again"]
    # The writer's session ends: its records go with it.
    writer.stop_cache()
    writer.client.disconnect()
    wait_for(lambda: not list(reader.iter_waits(cached=False)),
             what="records gone with the session")


def test_delete_and_a_set_of_a_missing_record(zk_factory):
    api = zk_factory()
    assert not put(api, record(), exists=True)   # nothing to set
    assert put(api, record())
    done = []
    api.delete_wait_async("100-0000000001", WORKER, done.append)
    wait_for(lambda: done == [True], what="deleted")
    api.delete_wait_async("100-0000000001", WORKER, done.append)
    wait_for(lambda: len(done) == 2, what="the second delete")
    assert done == [True, True], done
    assert not list(api.iter_waits(cached=False))


def test_a_malformed_record_is_skipped_once(zk_factory, caplog):
    api = zk_factory()
    api.kazoo.create(f"{ROOT}/bad:1", b'{"request": 5}', makepath=True)
    assert put(api, record())
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert [w.request for w in api.iter_waits(cached=False)] == [
                "100-0000000001"]
    warnings = [r for r in caplog.records if "bad:1" in r.getMessage()]
    assert len(warnings) == 1 and "'request'" in warnings[0].getMessage()


# -- the book ------------------------------------------------------------------
def make_book(api, publish_after=1.0, **kw):
    clock, mono = Clock(), Clock(0.0)
    book = waits.WaitBook(api, WORKER, "aws", "main", "host", clock=clock,
                          monotonic=mono, **kw)
    book.publish_after = publish_after
    return book, clock, mono


def submit(api, n=1) -> list[str]:
    ids = [api.submit_request(NodeRequest(node_types=["small"]))
           for _ in range(n)]
    wait_for(lambda: all(api.get_request(i, cached=True) for i in ids),
             what="requests in the cache")
    return ids


def stored(api) -> dict[str, RequestWait]:
    return {w.request: w for w in api.iter_waits(cached=False)}


def set_state(api, rid: str, state: str) -> None:
    """As another launcher (or Zuul) would; returns once the cache has it."""
    request = api.get_request(rid)
    request.set_state(state)
    api.store_request(request)
    wait_for(lambda: api.get_request(rid, cached=True).state == state,
             what=f"the cache sees {state}")


def settle(book):
    wait_for(lambda: not any(e.writing for e in book._held.values()),
             what="writes settled")


def test_written_after_the_grace_and_only_on_change(zk_factory):
    api = zk_factory()
    book, clock, mono = make_book(api)
    [rid] = submit(api)
    full = waits.at_quota(Verdict(False, "pool max-servers", "instances",
                                  0, 1))
    book.note(rid, full)
    book.end_pass([], True)
    assert book.writes == 0          # served within the grace: no write
    mono.now, clock.now = 1.5, clock.now + 1.5
    book.note(rid, full)
    book.end_pass([], True)
    settle(book)
    assert book.writes == 1
    first = stored(api)[rid]
    assert (first.kind, first.since) == ("quota", 1_700_000_000.0)
    for _ in range(5):               # nothing changes: nothing written
        clock.now += 1
        book.note(rid, full)
        book.end_pass([], True)
    assert book.writes == 1
    # Same kind, new text: rewritten once the last write is ``refresh``
    # old, ``since`` kept.
    other = waits.at_quota(Verdict(False, "pool max-cores", "cores", 2, 4))
    book.note(rid, other)
    book.end_pass([], True)
    assert book.writes == 1 and "max-servers" in stored(api)[rid].text
    mono.now = 1.5 + book.refresh
    book.note(rid, other)
    book.end_pass([], True)
    settle(book)
    assert book.writes == 2
    assert stored(api)[rid].since == first.since
    assert "max-cores" in stored(api)[rid].text
    # Another kind: ``since`` starts again.
    book.note(rid, waits.throttled("aws", 2))
    book.end_pass([], True)
    settle(book)
    assert stored(api)[rid].since == clock.now
    assert book.writes == 3


def test_records_go_when_the_request_no_longer_waits_here(zk_factory):
    api = zk_factory()
    book, clock, mono = make_book(api, publish_after=0.0)
    routed, served, quiet = submit(api, 3)
    for rid in (routed, served, quiet):
        book.note(rid, waits.queued(["small"]))
    book.end_pass([], True)
    wait_for(lambda: len(stored(api)) == 3, what="three records")
    # routed again without a reason; another pool took one; the third was
    # not routed this pass (a full queue): it keeps its record.
    book.seen(routed)
    set_state(api, served, RequestState.PENDING)
    book.end_pass([], True)
    wait_for(lambda: set(stored(api)) == {quiet}, what="two records gone")
    book.clear()
    wait_for(lambda: not stored(api), what="cleared on stop")


def test_a_decline_is_remembered_while_the_request_is_requested(
        zk_factory):
    api = zk_factory()
    book, clock, mono = make_book(api, publish_after=0.0)
    [rid] = submit(api)
    book.declined(rid, waits.declined("images are not available", ["disk"],
                                      {"disk"}, {"disk": "ubuntu"}))
    for _ in range(3):
        book.end_pass([], True)
    settle(book)
    assert stored(api)[rid].kind == "image" and book.writes == 1
    set_state(api, rid, RequestState.FAILED)
    book.end_pass([], True)
    wait_for(lambda: not stored(api), what="the record gone once failed")


def thirty_waiting(api):
    """A book with thirty requests noted and their records written."""
    book, clock, mono = make_book(api, publish_after=0.0)
    rids = submit(api, 30)
    for rid in rids:
        book.note(rid, waits.queued(["small"]))
    book.end_pass([], True)
    wait_for(lambda: len(stored(api)) == 30, what="thirty records")
    return book, rids


def test_a_lost_session_writes_every_reason_again(zk_factory):
    api = zk_factory()
    book, rids = thirty_waiting(api)
    for _ in range(3):
        for rid in rids:
            book.note(rid, waits.queued(["small"]))
        book.end_pass([], True)
    assert book.writes == 30
    # As after a new session: the records are gone, the book writes again.
    for name in api.kazoo.get_children(ROOT):
        api.kazoo.delete(f"{ROOT}/{name}")
    book.lost()
    for rid in rids:
        book.note(rid, waits.queued(["small"]))
    book.end_pass([], True)
    wait_for(lambda: len(stored(api)) == 30, what="thirty records again")
    assert book.writes == 60


def change(api, other, rids, edit) -> None:
    """``edit`` the requests through ``other`` (as Zuul or another launcher
    would); returns once ``api``'s cache knows (without reading them)."""
    before = {rid: api.request_version(rid) for rid in rids}
    for rid in rids:
        request = other.get_request(rid)
        edit(request)
        other.store_request(request)
    wait_for(lambda: all(api.request_version(rid) != before[rid]
                         for rid in rids), what="the changes notified")


def request_reads(sent) -> dict[str, int]:
    return {path: n for (kind, path), n in sent.items()
            if kind == "GetData" and path.startswith(REQUESTS + "/")}


@pytest.mark.parametrize("persistent", [True, False],
                         ids=["lazy", "one-shot-watches"])
def test_held_requests_are_read_again_only_once_changed(zk_factory,
                                                        persistent):
    """Thirty requests wait here but are left unrouted pass after pass
    (another pool goes first): the book asks about each once, then only
    about those a change was notified for -- one ZooKeeper read each, not
    one per pass; one taken elsewhere loses its record."""
    api, other = zk_factory(persistent=persistent), zk_factory()
    book, rids = thirty_waiting(api)
    sent = count_requests(api)
    for _ in range(5):
        book.end_pass([], True)
    assert book.asks == 30               # once each, not once a pass
    assert request_reads(sent) == {}     # and from the cache

    changed = rids[:3]
    change(api, other, changed, lambda r: setattr(r, "relative_priority", 5))
    for _ in range(5):
        book.end_pass([], True)
    assert book.asks == 33
    assert request_reads(sent) == {request_path(r): 1 for r in changed}
    assert book.deletes == 0 and len(book._held) == 30

    change(api, other, rids[3:4],
           lambda r: r.set_state(RequestState.PENDING))
    book.end_pass([], True)
    assert book.asks == 34 and book.deletes == 1
    wait_for(lambda: len(stored(api)) == 29, what="the taken one's gone")


def blocker_changes(book, rids, mono, passes, step=0.05, first=0):
    """``passes`` passes in which every request queues behind another
    request than in the pass before (a pool at quota serving its waiting
    request and taking the next one: ``200-<first>``, then the next
    number), ``step`` seconds apart; each pass's writes land before the
    next (the clock is the test's, the writes are real)."""
    for n in range(first, first + passes):
        settle(book)
        mono.now += step
        for rid in rids:
            book.note(rid, waits.behind(
                waits.queued(["small"]), f"200-{n:010d}",
                waits.at_quota(Verdict(False, "pool max-servers",
                                       "instances", 0, 1))))
        book.end_pass([], True)


def test_a_backlog_costs_a_bounded_number_of_writes(zk_factory):
    """300 requests queue behind a blocker that changes every pass (20
    passes a second): the book writes at most its budget a second -- the
    first 100 at once, the rest as the budget refills, in the order they
    were routed -- never a rewrite per record per pass; each record is
    refreshed at most every ``refresh`` seconds and ends up naming a recent
    blocker."""
    api = zk_factory()
    book, clock, mono = make_book(api, publish_after=0.0, writes_per_s=100)
    rids = submit(api, 300)
    blocker_changes(book, rids, mono, 1)
    assert book.writes == 100
    settle(book)
    assert set(stored(api)) == set(rids[:100])   # the first routed first
    blocker_changes(book, rids, mono, 60, first=1)   # 3 s, 20 passes/s
    assert book.writes <= 100 + 100 * 3 + 1
    wait_for(lambda: len(stored(api)) == 300, what="every record written")
    assert book.writes == 300   # no refresh yet: none is 5 s old
    blocker_changes(book, rids, mono, 200, first=61)     # 10 s more
    # Each record refreshed at most twice in these 10 s (every 5 s), and
    # the budget allows 1000: the refresh spacing is what holds them back.
    assert 300 < book.writes <= 300 + 2 * 300
    settle(book)
    behind = {w.details["behind"] for w in stored(api).values()}
    assert all(int(b.split("-")[1]) >= 161 for b in behind), behind


def test_new_records_go_before_refreshes_when_the_budget_is_short(
        zk_factory):
    """Budget 10 a second, 20 requests: the first ten routed are written;
    once they are due for a refresh, the ten never written go first and
    the refreshes wait for budget."""
    api = zk_factory()
    book, clock, mono = make_book(api, publish_after=0.0, writes_per_s=10)
    rids = submit(api, 20)
    blocker_changes(book, rids, mono, 1)
    settle(book)
    assert book.writes == 10 and set(stored(api)) == set(rids[:10])
    mono.now += book.refresh    # the ten due for a refresh, 10 tokens back
    blocker_changes(book, rids, mono, 1, first=1)
    settle(book)
    assert book.writes == 20 and set(stored(api)) == set(rids)
    records = stored(api)
    assert {records[r].details["behind"] for r in rids} == {
        "200-0000000000", "200-0000000001"}
    assert {records[r].details["behind"] for r in rids[:10]} == {
        "200-0000000000"}      # due, but the new ones went first
    mono.now += 1.0             # budget again: the refreshes' turn
    blocker_changes(book, rids, mono, 1, first=2)
    settle(book)
    assert book.writes == 30
    records = stored(api)
    assert {records[r].details["behind"] for r in rids[:10]} == {
        "200-0000000002"}
    assert {records[r].details["behind"] for r in rids[10:]} == {
        "200-0000000001"}      # written 1 s ago: not due yet
