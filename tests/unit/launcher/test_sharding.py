"""Rendezvous order of the pools for a request, and the grace after which
the others take it (``nodepool.launcher.sharding``), with an injected
clock; and the pool worker's use of it (``PoolWorker._in_turn``)."""

from __future__ import annotations

import collections
import threading
import uuid
from types import SimpleNamespace

import pytest

from nodepool.launcher.sharding import (BOUND_GRACES, GRACE, Shard, Turn,
                                        ranking, score)
from nodepool.zk.models import NodeRequest, RequestState

HOST = "host.example.org"
# blake2b, 8 bytes, of "200-0000000001", NUL, "a"
SCORE_A = 7002504382291315976


def pool_id(name: str) -> str:
    return f"{HOST}-PoolWorker.prov-{name}-{uuid.uuid4().hex}"


class Clock:
    def __init__(self, now: float = 500.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def request_ids(n: int) -> list[str]:
    return [f"200-{i:010d}" for i in range(n)]


def test_the_order_is_deterministic_and_independent_of_input_order():
    members = [pool_id(n) for n in "abc"]
    for key in request_ids(50):
        first = ranking(key, members)
        assert ranking(key, list(reversed(members))) == first
        assert ranking(key, members + members[:1]) == first
        assert sorted(first) == sorted(members)
    # Pinned values: the weight must not depend on the process (no salted
    # hash()), or launchers would disagree on who goes first.
    assert score("200-0000000001", "a") == SCORE_A
    assert ranking("200-0000000001", ["a", "b", "c"]) == ["c", "a", "b"]


def test_1000_requests_spread_evenly_over_3_pools():
    members = [pool_id(n) for n in "abc"]
    firsts = collections.Counter(ranking(k, members)[0]
                                 for k in request_ids(1000))
    assert set(firsts) == set(members)
    # 333 each expected; a fair split stays within +-15 % (4 sigma).
    assert all(280 <= n <= 387 for n in firsts.values()), firsts


def test_a_pool_leaving_moves_only_its_own_requests():
    a, b, c = (pool_id(n) for n in "abc")
    keys = request_ids(300)
    before = {k: ranking(k, [a, b, c])[0] for k in keys}
    after = {k: ranking(k, [a, b])[0] for k in keys}
    for key in keys:
        if before[key] != c:
            assert after[key] == before[key]


def shards(n: int, clock: Clock):
    ids = [pool_id(str(i)) for i in range(n)]
    return ids, {i: Shard(i, clock=clock) for i in ids}


def test_exactly_one_pool_takes_each_request_at_once():
    clock = Clock()
    ids, by_id = shards(3, clock)
    for key in request_ids(200):
        turns = [by_id[i].turn(key, ids) for i in ids]
        assert turns.count(Turn.MINE) == 1
        assert turns.count(Turn.WAIT) == 2
        assert ids[turns.index(Turn.MINE)] == ranking(key, ids)[0]


def test_the_only_candidate_takes_at_once():
    clock = Clock()
    me = pool_id("a")
    assert Shard(me, clock=clock).turn("200-0000000001", [me]) is Turn.MINE


def test_others_take_after_the_grace_in_their_rank_order():
    clock = Clock()
    ids, by_id = shards(3, clock)
    key = "200-0000000007"
    first, second, third = ranking(key, ids)
    assert by_id[second].turn(key, ids) is Turn.WAIT
    assert by_id[third].turn(key, ids) is Turn.WAIT
    clock.now += GRACE - 0.01
    assert by_id[second].turn(key, ids) is Turn.WAIT
    clock.now += 0.01
    assert by_id[second].turn(key, ids) is Turn.LATE
    assert by_id[third].turn(key, ids) is Turn.WAIT
    clock.now += GRACE
    assert by_id[third].turn(key, ids) is Turn.LATE


def test_the_grace_counts_from_this_workers_first_sight():
    clock = Clock()
    ids, by_id = shards(2, clock)
    key = "200-0000000001"
    second = ranking(key, ids)[1]
    clock.now += 100       # the request is old, but new to this worker
    assert by_id[second].turn(key, ids) is Turn.WAIT
    clock.now += GRACE
    assert by_id[second].turn(key, ids) is Turn.LATE


@pytest.mark.parametrize("how", ["gone", "declined", "paused"])
def test_a_first_pool_that_is_gone_declined_or_paused_gives_way(how):
    clock = Clock()
    ids, by_id = shards(3, clock)
    key = "200-0000000003"
    first, second, third = ranking(key, ids)
    assert by_id[second].turn(key, ids) is Turn.WAIT
    # Gone (unregistered), declined (in declined_by) and paused pools are
    # no longer candidates: the worker leaves them out of the members.
    left = [second, third]
    assert by_id[second].turn(key, left) is Turn.MINE
    assert by_id[third].turn(key, left) is Turn.WAIT


def test_a_first_pool_that_cannot_take_it_now_gives_way():
    clock = Clock()
    ids, by_id = shards(3, clock)
    key = "200-0000000004"
    first, second, third = ranking(key, ids)
    asked = []

    def gives_way(member):
        asked.append(member)
        return member == first
    assert by_id[second].turn(key, ids, gives_way) is Turn.MINE
    assert asked == [first]     # only pools ranked ahead are asked
    assert by_id[first].turn(key, ids, gives_way) is Turn.MINE


def test_a_paused_worker_comes_after_every_other_pool():
    clock = Clock()
    ids, by_id = shards(3, clock)
    key = "200-0000000005"
    first = ranking(key, ids)[0]
    others = [i for i in ids if i != first]
    # We are paused: the others do not count us, and we leave ourselves
    # out too, so we come last (two graces for two others).
    assert by_id[first].turn(key, others) is Turn.WAIT
    clock.now += GRACE
    assert by_id[first].turn(key, others) is Turn.WAIT
    clock.now += GRACE
    assert by_id[first].turn(key, others) is Turn.LATE


def second_in_line(clock: Clock, n: int):
    """The second of two pools, having seen ``n`` requests; the keys,
    and those the first pool is first for."""
    ids, by_id = shards(2, clock)
    keys = request_ids(n)
    theirs = [k for k in keys if ranking(k, ids)[0] == ids[0]]
    shard = by_id[ids[1]]
    for key in keys:
        shard.turn(key, ids)
    return shard, ids, keys, theirs


def test_no_request_is_taken_from_a_first_pool_making_progress():
    clock = Clock()
    shard, ids, keys, theirs = second_in_line(clock, 200)
    *taken, probe = theirs
    assert len(taken) > 2 * BOUND_GRACES
    start = clock.now
    # The first pool takes one of its requests every half grace (it is
    # busy): the probe stays its own until the bound.
    waiting = list(keys)
    while clock.now + GRACE / 2 < start + BOUND_GRACES * GRACE:
        clock.now += GRACE / 2
        waiting.remove(taken.pop(0))
        shard.keep(waiting)
        assert shard.turn(probe, ids) is Turn.WAIT
    clock.now = start + BOUND_GRACES * GRACE
    assert shard.turn(probe, ids) is Turn.LATE


def test_a_stalled_first_pool_loses_its_requests_after_the_grace():
    clock = Clock()
    shard, ids, keys, theirs = second_in_line(clock, 40)
    # It took one a while ago, then nothing for a grace.
    waiting = [k for k in keys if k != theirs[0]]
    shard.keep(waiting)
    clock.now += GRACE
    shard.keep(waiting)
    assert all(shard.turn(k, ids) is Turn.LATE for k in theirs[1:])


def test_an_idle_pool_takes_a_busy_pools_requests_past_grace_as_spare():
    clock = Clock()
    shard, ids, keys, theirs = second_in_line(clock, 40)
    clock.now += GRACE
    shard.keep([k for k in keys if k != theirs[0]])   # progress: busy
    rest = theirs[1:]
    assert all(shard.turn(k, ids) is Turn.WAIT for k in rest)
    assert all(shard.turn(k, ids, idle=True) is Turn.SPARE for k in rest)
    assert not any(shard.unread_waits(k, ids, idle=True) for k in rest)
    # Within the grace a request stays the busy pool's, idle or not.
    fresh = next(k for k in (f"200-9{n:09d}" for n in range(1000))
                 if ranking(k, ids)[0] == ids[0])    # the busy pool's
    assert shard.turn(fresh, ids, idle=True) is Turn.WAIT


def test_requests_we_took_are_no_progress_of_their_first_pool():
    clock = Clock()
    shard, ids, keys, theirs = second_in_line(clock, 40)
    clock.now += GRACE
    assert shard.turn(theirs[0], ids) is Turn.LATE
    shard.taking(theirs[0])            # we take it: the first pool is
    waiting = [k for k in keys if k != theirs[0]]
    shard.keep(waiting)                # still stalled
    assert all(shard.turn(k, ids) is Turn.LATE for k in theirs[1:])


def test_keep_forgets_requests_no_longer_waiting():
    clock = Clock()
    ids, by_id = shards(2, clock)
    key = "200-0000000001"
    second = by_id[ranking(key, ids)[1]]
    second.turn(key, ids)
    clock.now += GRACE
    second.keep([])        # taken meanwhile; then reset to requested
    assert second.turn(key, ids) is Turn.WAIT
    clock.now += GRACE
    second.keep([key])
    assert second.turn(key, ids) is Turn.LATE


# -- the pool worker ----------------------------------------------------------

def component(cid, labels=("small",), priority=100, paused=False,
              provider="prov"):
    return SimpleNamespace(id=cid, supported_labels=list(labels),
                           priority=priority, paused=paused,
                           provider_name=provider, name="main")


def worker(clock, offerings=()):
    """A ``PoolWorker`` reduced to what ``_in_turn`` uses."""
    from nodepool.launcher.poolworker import PoolWorker
    w = PoolWorker.__new__(PoolWorker)
    w.id = pool_id("me")
    w.shard = Shard(w.id, clock=clock)
    w.provider = SimpleNamespace(name="prov")
    w.pool = SimpleNamespace(priority=100, labels={"small": None,
                                                   "big": None})
    w.component = component(w.id)
    w.zk = SimpleNamespace(iter_offerings=lambda provider: list(offerings))
    w._lock = threading.Lock()
    w._taking = set()
    w._idle = False
    w._spare = set()
    return w


def req(i, labels=("small",), declined=(), provider=None):
    return NodeRequest(id=f"200-{i:010d}", state=RequestState.REQUESTED,
                       node_types=list(labels), declined_by=list(declined),
                       provider=provider)


def test_worker_routes_its_own_requests_first_and_others_after_grace():
    clock = Clock()
    w = worker(clock)
    peers = [component(pool_id(n)) for n in "ab"]
    requests = [req(i) for i in range(60)]
    ids = [w.id] + [c.id for c in peers]
    mine = [r.id for r in requests if ranking(r.id, ids)[0] == w.id]
    assert 5 < len(mine) < 40
    assert [r.id for r in w._in_turn(requests, peers)] == mine
    clock.now += GRACE
    second = [r.id for r in requests if ranking(r.id, ids)[1] == w.id]
    assert [r.id for r in w._in_turn(requests, peers)] == mine + second
    clock.now += GRACE
    rest = [r.id for r in requests if r.id not in mine + second]
    assert [r.id for r in w._in_turn(requests, peers)] == \
        mine + sorted(second + rest)


def test_an_idle_worker_takes_a_busy_peers_newest_requests_first():
    from nodepool.launcher.poolworker import SPARE_TAKES
    clock = Clock()
    w = worker(clock)
    peer = component(pool_id("a"))
    ids = [w.id, peer.id]
    requests = [req(i) for i in range(200)]
    theirs = [r for r in requests if ranking(r.id, ids)[0] == peer.id]
    assert len(theirs) > SPARE_TAKES + 2
    ours = [r for r in requests if r not in theirs]
    # First pass: ours go; the peer's wait their grace.
    assert list(w._in_turn(requests, [peer])) == ours
    assert not w._idle
    # Ours were taken; the peer takes its oldest one every pass (busy).
    clock.now += GRACE
    waiting = theirs[1:]
    assert list(w._in_turn(waiting, [peer])) == []
    assert w._idle                 # nothing of ours: idle
    # Idle: the peer's newest ones, at most SPARE_TAKES a pass.
    clock.now += 0.1
    waiting = waiting[1:]
    got = list(w._in_turn(waiting, [peer]))
    assert got == waiting[::-1][:SPARE_TAKES]
    assert w._spare == {r.id for r in got}
    # A take of ours in flight: not idle, no spares.
    w._taking.add(got[0].id)
    assert list(w._in_turn(waiting, [peer])) == []
    assert not w._idle and w._spare == set()


def test_the_only_pool_routes_every_request_in_order():
    w = worker(Clock())
    requests = [req(i) for i in range(30)]
    assert list(w._in_turn(requests, [component(w.id)])) == requests


def test_worker_skips_peers_that_cannot_serve_or_declined():
    clock = Clock()
    w = worker(clock)
    small_only = component(pool_id("a"))
    paused = component(pool_id("b"), labels=("small", "big"), paused=True)
    lower = component(pool_id("c"), labels=("small", "big"), priority=200)
    declined = component(pool_id("d"), labels=("small", "big"))
    peers = [small_only, paused, lower, declined]
    requests = [req(i, labels=("small", "big"), declined=[declined.id])
                for i in range(30)]
    # No peer would serve them now: every one is ours at once.
    assert list(w._in_turn(requests, peers)) == requests


def test_worker_with_preferred_provider_ignores_other_providers():
    clock = Clock()
    w = worker(clock)
    elsewhere = component(pool_id("a"), provider="other")
    requests = [req(i, provider="prov") for i in range(30)]
    assert list(w._in_turn(requests, [elsewhere])) == requests
    unpreferred = [req(i) for i in range(30)]
    assert len(list(w._in_turn(unpreferred, [elsewhere]))) < 30


def test_worker_passes_over_a_peer_blocked_by_an_offering_record():
    clock = Clock()
    peer = component(pool_id("a"))
    record = SimpleNamespace(unavailable=lambda now: True,
                             short=lambda now: False,
                             blocks=lambda pool, label: True)
    requests = [req(i) for i in range(30)]
    assert len(list(worker(clock)._in_turn(requests, [peer]))) < 30
    w = worker(clock, offerings=[record])
    assert list(w._in_turn(requests, [peer])) == requests


# -- requests left unread (PoolWorker._unread_filter) --------------------------

def alike(name):
    """A peer serving what ``worker()`` serves, from the same provider."""
    return component(pool_id(name), labels=("small", "big"))


def unread_worker(clock, unchanged=lambda request_id: True, offerings=()):
    w = worker(clock, offerings)
    w.component = component(w.id, labels=("small", "big"))
    w.zk.request_unchanged = unchanged
    w.zk.requests_with_waits = lambda but: set()
    w.clock = clock
    w._taken_seen = {}
    w._taken_guess = {}
    return w


def test_requests_another_pool_goes_first_for_are_not_read_in_the_grace():
    clock = Clock()
    w = unread_worker(clock)
    peers = [alike("a"), alike("b")]
    ids = request_ids(60)
    members = [w.id] + [c.id for c in peers]
    unread: list = []
    wanted = w._unread_filter(peers + [w.component], unread)
    read = [i for i in ids if wanted(i)]
    assert read == [i for i in ids if ranking(i, members)[0] == w.id]
    assert sorted(unread) == sorted(set(ids) - set(read))
    # Their first sight is kept by the pass (nothing else was read), so
    # after one grace those we come second for are read (the others took
    # none of theirs: no progress), after two every one.
    list(w._in_turn([], peers, unread))
    clock.now += GRACE
    wanted = w._unread_filter(peers + [w.component], [])
    assert [i for i in ids if wanted(i)] == \
        [i for i in ids if w.id in ranking(i, members)[:2]]
    clock.now += GRACE
    wanted = w._unread_filter(peers + [w.component], [])
    assert all(wanted(i) for i in ids)


def test_changed_requests_another_pool_goes_first_for_count_as_taken():
    # Its take (pending) most likely: not read while that pool is there,
    # for ten graces at most -- unless another pool keeps a wait record
    # for it (a decline writes one).
    clock = Clock()
    peers = [alike("a"), alike("b")]
    ids = request_ids(60)
    w = unread_worker(clock, unchanged=lambda request_id: False)
    members = [c.id for c in peers] + [w.id]
    theirs = [i for i in ids if ranking(i, members)[0] != w.id]
    declined = theirs[:5]
    w.zk.requests_with_waits = lambda but: set(declined)
    wanted = w._unread_filter(peers, [], set())
    read = [i for i in ids if wanted(i)]
    # Ours first are read (changed: declined to us, or our own write,
    # which costs no read); the others' only with a wait record.
    assert sorted(read) == sorted((set(ids) - set(theirs)) | set(declined))
    assert set(w._taken_guess) == set(theirs) - set(declined)
    # A wait record written just after the decline: read at once.
    late = theirs[5]
    w.zk.requests_with_waits = lambda but: set(declined) | {late}
    wanted = w._unread_filter(peers, [], set())
    assert wanted(late) and not wanted(theirs[6])
    # A grace on, the pools ahead still there: still unread.
    clock.now += GRACE
    wanted = w._unread_filter(peers, [], set())
    assert not any(wanted(i) for i in theirs[6:])
    # The pool first for some leaves: those are read now.
    gone = peers[0]
    left = [i for i in theirs[6:] if ranking(i, members)[0] == gone.id]
    wanted = w._unread_filter(peers[1:], [], set())
    assert left and all(wanted(i) for i in left)
    # Ten graces after the first sight, every other one is read.
    clock.now += 9 * GRACE
    wanted = w._unread_filter(peers, [], set())
    assert all(wanted(i) for i in set(ids) - set(left))


@pytest.mark.parametrize("unlike", ["labels", "provider", "paused",
                                    "blocked", "alone"])
def test_every_request_is_read_unless_all_pools_are_alike(unlike):
    clock = Clock()
    record = SimpleNamespace(unavailable=lambda now: True,
                             short=lambda now: False,
                             blocks=lambda pool, label: True)
    w = unread_worker(clock, offerings=[record] if unlike == "blocked"
                      else ())
    peer = alike("a")
    if unlike == "labels":
        peer = component(peer.id, labels=("small",))
    elif unlike == "provider":
        peer = component(peer.id, labels=("small", "big"),
                         provider="other")
    elif unlike == "paused":
        w.component = component(w.id, labels=("small", "big"),
                                paused=True)
    peers = [] if unlike == "alone" else [peer]
    assert w._unread_filter(peers, []) is None


def test_unread_requests_of_a_first_pool_making_progress_stay_unread():
    clock = Clock()
    w = unread_worker(clock)
    peer = alike("a")
    members = [w.id, peer.id]
    ids = request_ids(80)
    theirs = [i for i in ids if ranking(i, members)[0] == peer.id]
    took, waiting = theirs[0], theirs[1:]
    unread: list = []
    wanted = w._unread_filter([peer], unread)
    assert not any(wanted(i) for i in theirs)
    w._taking.add("200-9999999999")     # busy with a take of our own
    list(w._in_turn([], [peer], unread))
    clock.now += GRACE
    # The peer took one of its requests (it left the waiting ones): it
    # makes progress, so the rest of its share is still not read.
    list(w._in_turn([], [peer], waiting))
    wanted = w._unread_filter([peer], [])
    assert not any(wanted(i) for i in waiting)
    assert took not in waiting
    # Once we are idle they are read even so (spares, newest first).
    w._taking.clear()
    list(w._in_turn([], [peer], waiting))
    assert w._idle
    wanted = w._unread_filter([peer], [])
    assert all(wanted(i) for i in waiting)
    # No progress for a grace: they are read (and taken: Turn.LATE).
    w._taking.add("200-9999999999")
    list(w._in_turn([], [peer], waiting))
    assert not w._idle
    clock.now += GRACE
    list(w._in_turn([], [peer], waiting))
    wanted = w._unread_filter([peer], [])
    assert all(wanted(i) for i in waiting)


def test_a_request_read_taken_is_not_read_again_for_a_grace():
    # Its next write is most likely its fulfilment (Zuul removes it).
    clock = Clock()
    w = unread_worker(clock, unchanged=lambda request_id: False)
    peer = alike("a")
    ours = [i for i in request_ids(20)
            if ranking(i, [peer.id, w.id])[0] == w.id]
    taken, other = ours[:2]
    w._taken_seen[taken] = clock.now
    listed: set = set()
    wanted = w._unread_filter([peer], [], listed)
    assert not wanted(taken) and wanted(other)
    assert listed == {taken}       # still there: remembered
    clock.now += GRACE             # handed back, say: read now
    wanted = w._unread_filter([peer], [], set())
    assert wanted(taken)
