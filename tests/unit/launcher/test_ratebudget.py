"""The rate budget's share computation and re-sharing (ratebudget.py).

The pure parts (``target_shares``, ``Liveness``, ``ShareHold``) on plain
values; ``ProviderBudget`` on a real ZooKeeper (each member its own kazoo
session, as each launcher is) with one injected clock, so leases and holds
expire when the test moves the clock, never by waiting.
"""

from __future__ import annotations

import json

import pytest

from nodepool.driver.ratelimit import RateLimiter
from nodepool.launcher.ratebudget import (
    IDLE_WEIGHT, Liveness, Member, ProviderBudget, ShareHold, target_shares)
from nodepool.zk.paths import rate_budget_dir

W, R = "p-write", "p-read"


def member(mid, busy=(), **rates):
    return Member(mid, rates or {W: 6.0}, frozenset(busy))


# -- target_shares --------------------------------------------------------

def test_alone_a_member_has_the_whole_rate():
    assert target_shares(member("a"), []) == {W: 1.0}
    assert target_shares(member("a", busy=[W]), []) == {W: 1.0}


def test_busy_members_split_evenly():
    peers = [member("b", busy=[W]), member("c", busy=[W])]
    share = target_shares(member("a", busy=[W]), peers)[W]
    assert share == pytest.approx(1 / 3)


def test_idle_members_keep_a_trickle_and_leave_the_rest():
    peers = [member("b"), member("c")]
    busy = target_shares(member("a", busy=[W]), peers)[W]
    idle = target_shares(member("b"), [member("a", busy=[W]), member("c")])[W]
    assert busy == pytest.approx(1 / (1 + 2 * IDLE_WEIGHT))
    assert idle == pytest.approx(IDLE_WEIGHT / (1 + 2 * IDLE_WEIGHT))
    assert busy + 2 * idle == pytest.approx(1.0)
    assert busy * 6 >= 0.9 * 6


def test_all_idle_members_split_evenly():
    share = target_shares(member("a"), [member("b"), member("c")])[W]
    assert share == pytest.approx(1 / 3)


def test_the_lowest_configured_rate_is_the_budget():
    # a says 6/s, b says 3/s: together they stay within 3/s
    a = Member("a", {W: 6.0}, frozenset([W]))
    b = Member("b", {W: 3.0}, frozenset([W]))
    assert target_shares(a, [b])[W] * 6 == pytest.approx(1.5)
    assert target_shares(b, [a])[W] * 3 == pytest.approx(1.5)


def test_each_limiter_is_shared_by_its_own_demand():
    a = Member("a", {W: 6.0, R: 60.0}, frozenset([R]))
    b = Member("b", {W: 6.0, R: 60.0}, frozenset([W]))
    shares = target_shares(a, [b])
    assert shares[W] == pytest.approx(IDLE_WEIGHT / (1 + IDLE_WEIGHT))
    assert shares[R] == pytest.approx(1 / (1 + IDLE_WEIGHT))


def test_the_own_record_among_the_peers_counts_once():
    a = member("a", busy=[W])
    assert target_shares(a, [a, member("b", busy=[W])])[W] == \
        pytest.approx(0.5)


# -- Liveness and ShareHold -------------------------------------------------

def test_a_peer_is_live_while_its_record_changes_within_the_lease():
    live = Liveness(lease=3.0)
    live.observe("b", 10, now=0.0)
    assert live.live(2.9) == {"b"}
    live.observe("b", 10, now=2.9)          # same version: not a beat
    assert live.live(3.0) == set()
    live.observe("b", 11, now=3.2)          # a new beat
    assert live.live(3.2) == {"b"}
    live.keep_only([])                      # its record is gone
    assert live.live(3.2) == set()


def test_a_share_falls_at_once_and_rises_after_the_hold():
    hold = ShareHold(hold=1.5)
    assert hold.update(0.5, 0.0) == 0.5
    assert hold.update(0.25, 1.0) == 0.25    # lower: at once
    assert hold.update(1.0, 2.0) == 0.25     # higher: not yet held
    assert hold.update(1.0, 3.0) == 0.25     # 0.25 was in force at 1.5
    assert hold.update(1.0, 4.0) == 1.0      # held since 2.0
    assert hold.update(0.5, 5.0) == 0.5
    assert hold.update(1.0, 6.0, held=False) == 1.0   # the peers' doing


# -- ProviderBudget on a real ZooKeeper -------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def members(zk):
    clients, budgets = [], []
    clock = Clock()

    def make(rate=6.0, read=60.0, name="p"):
        client = zk.kazoo()
        clients.append(client)
        limiters = [RateLimiter(f"{name}-write", rate, clock=clock),
                    RateLimiter(f"{name}-read", read, clock=clock)]
        budget = ProviderBudget(client, name, limiters, hostname="h",
                                interval=1.0, lease=3.0, hold=1.5,
                                clock=clock)
        budgets.append(budget)
        return budget

    make.clock = clock
    make.clients = clients
    yield make
    for client in clients:
        client.stop()
        client.close()


def beat(clock, budgets, seconds=1.0):
    clock.now += seconds
    for b in budgets:
        b.beat()


def write_rate(budget):
    return budget.limiters["p-write"].rate


def test_joining_members_split_the_rate(members):
    a = members()
    a.start_share()
    assert write_rate(a) == pytest.approx(6.0)
    b = members()
    b.start_share()                          # sees a before its first call
    assert write_rate(b) == pytest.approx(3.0)
    beat(members.clock, [a, b])
    assert write_rate(a) == pytest.approx(3.0)
    c = members()
    c.start_share()
    beat(members.clock, [a, b, c])
    assert [write_rate(x) for x in (a, b, c)] == pytest.approx([2.0] * 3)
    assert sum(x.limiters["p-read"].rate for x in (a, b, c)) == \
        pytest.approx(60.0)


def test_a_member_that_leaves_gives_its_share_on_the_next_beat(members):
    a, b, c = members(), members(), members()
    for x in (a, b, c):
        x.start_share()
    beat(members.clock, [a, b, c], seconds=2.0)
    assert write_rate(a) == pytest.approx(2.0)
    c.leave()
    beat(members.clock, [a, b])
    assert write_rate(a) == pytest.approx(3.0)
    assert write_rate(b) == pytest.approx(3.0)


def test_a_joining_member_waits_for_the_others_to_lower(members):
    a, b = members(), members()
    a.start_share()
    b.start_share()
    beat(members.clock, [a, b], seconds=2.0)
    for x in (a, b):
        x.limiters["p-write"].stats.waits += 1
    beat(members.clock, [a, b], seconds=2.0)
    assert write_rate(a) == pytest.approx(3.0)
    c = members()
    c.start_share()                          # an idle newcomer's share
    assert write_rate(c) == pytest.approx(6 * IDLE_WEIGHT / (2 + IDLE_WEIGHT))
    total = []
    for _ in range(4):
        for x in (a, b, c):
            x.limiters["p-write"].stats.waits += 1
        beat(members.clock, [a, b, c])
        total.append(sum(write_rate(x) for x in (a, b, c)))
    assert [write_rate(x) for x in (a, b, c)] == pytest.approx([2.0] * 3)
    assert max(total) <= 6.0 + 1e-9, total   # never more than the budget


def test_a_killed_member_is_dropped_after_its_lease(members):
    a, b, c = members(), members(), members()
    for x in (a, b, c):
        x.start_share()
    beat(members.clock, [a, b, c])
    # c stops beating (kill -9): its znode stays until its session expires.
    # a and b last saw it change on the next beat (they beat before it).
    seconds = 0.0
    while write_rate(a) < 3.0 - 1e-9:
        beat(members.clock, [a, b])
        seconds += 1.0
        # the lease: 3 beats after the last change seen, counted from c's
        # last write; no hold, c's share is no rise of a's own
        assert seconds <= 4.0, "the survivors never took c's share"
    assert write_rate(b) == pytest.approx(3.0)
    assert seconds >= 4.0                    # not before the lease ran out
    assert c.path.rsplit("/", 1)[1] in members.clients[0].get_children(
        rate_budget_dir("p"))


def test_a_busy_member_takes_what_idle_ones_leave(members):
    a, b = members(), members()
    a.start_share()
    b.start_share()
    beat(members.clock, [a, b], seconds=2.0)    # past the join's hold
    lim = a.limiters["p-write"]
    held = []
    for _ in range(3):
        lim.stats.waits += 1                 # a's callers had to wait
        beat(members.clock, [a, b])
        held.append(write_rate(a))
    assert a.own().busy == {"p-write"}
    # a's own rise waits two beats for b to see a busy and lower
    assert held[:2] == pytest.approx([3.0, 3.0])
    assert write_rate(b) == pytest.approx(6 * IDLE_WEIGHT / (1 + IDLE_WEIGHT))
    assert write_rate(a) == pytest.approx(6 / (1 + IDLE_WEIGHT))
    assert write_rate(b) == pytest.approx(6 * IDLE_WEIGHT / (1 + IDLE_WEIGHT))
    assert write_rate(a) + write_rate(b) == pytest.approx(6.0)
    # a's queue drains: both idle again, even split (a lowers at once)
    beat(members.clock, [a, b])
    assert write_rate(a) == pytest.approx(3.0)


def test_a_bad_record_is_skipped_and_named_once(members, caplog):
    a = members()
    a.start_share()
    client = members.clients[0]
    bad = f"{rate_budget_dir('p')}/bad"
    client.create(bad, b"{not json", ephemeral=True)
    client.create(f"{rate_budget_dir('p')}/zero",
                  json.dumps({"rates": {"p-write": 0}}).encode(),
                  ephemeral=True)
    beat(members.clock, [a])
    beat(members.clock, [a])
    assert write_rate(a) == pytest.approx(6.0)
    warned = [r.getMessage() for r in caplog.records
              if "skipping" in r.getMessage()]
    assert len(warned) == 2, warned
    assert any(bad in w and "not JSON" in w for w in warned)
    assert any("rates.p-write is 0" in w for w in warned)


def test_out_of_touch_falls_to_an_idle_share(members, zk):
    a, b = members(), members()
    a.start_share()
    b.start_share()
    for _ in range(2):
        a.limiters["p-write"].stats.waits += 1
        b.limiters["p-write"].stats.waits += 1
        beat(members.clock, [a, b])
    assert write_rate(a) == pytest.approx(3.0)
    members.clients[0].stop()                # a loses ZooKeeper
    a.limiters["p-write"].stats.waits += 1
    beat(members.clock, [a], seconds=1.0)
    assert write_rate(a) == pytest.approx(3.0)   # not yet: within lease
    beat(members.clock, [a], seconds=1.5)
    assert write_rate(a) == pytest.approx(6 * IDLE_WEIGHT / (1 + IDLE_WEIGHT))


def test_unlimited_limiters_take_no_part(members):
    budget = members(rate=0.0, read=0.0)
    assert budget.limiters == {}


def test_a_member_that_left_never_writes_again(members):
    a, b = members(), members()
    a.start_share()
    b.start_share()
    b.leave()
    assert b.beat() == {}
    names = members.clients[0].get_children(rate_budget_dir("p"))
    assert names == [a.member_id]
