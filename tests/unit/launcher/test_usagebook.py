"""UsageBook alone: records, claims and the conservative count of unclaimed
nodes, through its ``zk`` seam (a fake store the test fills) and an
injected clock; no ZooKeeper server."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from nodepool.config.model import Pool
from nodepool.driver.quota import Quota
from nodepool.launcher.quota import PoolQuota, bound_cost
from nodepool.launcher.usagebook import (CLAIM_GRACE, NodeSummary,
                                         UsageBook, UsageRecord)
from nodepool.zk.errors import ZooKeeperError
from nodepool.zk.models import Node
from tests.unit.launcher.fakes import Clock


class Store:
    """What UsageBook uses of the ZooKeeper facade."""

    def __init__(self):
        self.records: dict[str, tuple[bytes, int]] = {}   # member -> data
        self.nodes: set[str] = set()        # existing node ids
        self.created: set[str] = set()      # created by "this process"
        self.writes = 0
        self.fail = False

    def put_usage(self, member, data, version):
        if self.fail:
            raise ZooKeeperError("could not write: ConnectionLoss()")
        self.writes += 1
        old = self.records.get(member, (b"", -1))[1]
        self.records[member] = (data, old + 1)
        return SimpleNamespace(version=old + 1)

    def delete_usage(self, member):
        self.records.pop(member, None)

    def usage_records(self, mine=None):
        return [(m, data, SimpleNamespace(mzxid=v))
                for m, (data, v) in sorted(self.records.items())
                if m != mine]

    def created_node_ids(self):
        return self.created & self.nodes

    def node_may_exist(self, node_id):
        return node_id in self.nodes


def summary(pool="main", state="ready", cores=2, provider="p"):
    return NodeSummary(provider, pool, state, ("small",),
                       {"instances": 1, "cores": cores})


def peer_record(store, member, nodes):
    # Each write is a new version (records are parsed once per version).
    version = store.records[member][1] + 1 if member in store.records else 0
    store.records[member] = (UsageRecord(member, "nl2", nodes).to_json(),
                             version)
    store.nodes |= set(nodes)


def book(store, clock, summaries=None):
    def summarize(own):
        return {i: s for i, s in (summaries or {}).items() if i in own}
    return UsageBook(store, summarize, "nl1", clock=clock)


def test_a_record_round_trips():
    rec = UsageRecord("m", "nl2", {"0000000001": summary(),
                                   "0000000002": summary(state="building")})
    back = UsageRecord.from_json("m", rec.to_json())
    assert back == rec


@pytest.mark.parametrize("data, problem", [
    (b"{", "invalid JSON"),
    (b"[]", "not an object"),
    (b"{}", "no 'nodes' object"),
    (b'{"nodes": {"1": 3}}', "nodes.1 is not an object"),
    (b'{"nodes": {"1": {"pool": 5}}}', "nodes.1.pool is 5"),
    (b'{"nodes": {"1": {"type": "x"}}}', "nodes.1.type is 'x'"),
    (b'{"nodes": {"1": {"resources": {"cores": -1}}}}',
     "nodes.1.resources is"),
])
def test_a_bad_record_names_what_is_wrong(data, problem):
    with pytest.raises(ValueError, match=problem):
        UsageRecord.from_json("m", data)


def test_the_owner_writes_only_what_changed():
    store, clock = Store(), Clock()
    sums = {"0000000001": summary()}
    b = book(store, clock, sums)
    store.nodes = store.created = {"0000000001"}
    assert b.beat() and store.writes == 1
    assert not b.beat() and store.writes == 1      # unchanged: no write
    sums["0000000001"] = summary(state="used")
    assert b.beat() and store.writes == 2
    store.nodes = set()                            # deleted: left out
    assert b.beat()
    assert UsageRecord.from_json(b.member, store.records[b.member][0]
                                 ).nodes == {}


def test_each_beat_writes_exactly_the_records_json_reencoding_only_changes(
        monkeypatch):
    store, clock = Store(), Clock()
    ids = [f"{i:010d}" for i in range(1000)]
    sums = {i: summary(cores=1 + n % 3) for n, i in enumerate(ids)}
    sums[ids[7]] = NodeSummary("p", "main", "in-use", ("small",),
                               {"instances": 1}, "tenant-a", "200-0000000001")
    b = book(store, clock, sums)
    store.nodes = store.created = set(ids)
    encoded = []
    real = NodeSummary.to_doc
    monkeypatch.setattr(NodeSummary, "to_doc",
                        lambda self: encoded.append(1) or real(self))

    def written():
        return store.records[b.member][0]

    def expected():
        with monkeypatch.context() as m:
            m.setattr(NodeSummary, "to_doc", real)
            return UsageRecord(b.member, "nl1", {
                i: sums[i] for i in store.nodes}).to_json()
    assert b.beat() and written() == expected()
    assert len(encoded) == 1000
    encoded.clear()
    for n in range(5):                      # a change and a deletion a beat
        sums[ids[100 + n]] = summary(state="used")
        store.nodes.discard(ids[500 + n])
        assert b.beat()
        assert written() == expected()
    assert len(encoded) == 5                # only the changed nodes


def test_a_failed_write_is_said_once_and_retried(caplog):
    store, clock = Store(), Clock()
    b = book(store, clock, {"0000000001": summary()})
    store.nodes = store.created = {"0000000001"}
    store.fail = True
    with caplog.at_level(logging.WARNING):
        assert not b.beat() and not b.beat()
    assert len([r for r in caplog.records
                if "write failed" in r.getMessage()]) == 1
    store.fail = False
    assert b.beat() and b.member in store.records


def test_claimed_nodes_are_not_read_and_count_while_they_exist():
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {"0000000001": summary(),
                                 "0000000002": summary(pool="other")})
    store.nodes.add("0000000003")     # an upstream launcher's, say
    store.created.add("0000000004")   # ours
    store.nodes.add("0000000004")
    clock.now += CLAIM_GRACE          # 3 is not young once first seen...
    claims = b.claims()
    # ...but it is seen only now: young, not read for a grace.
    assert [i for i in sorted(store.nodes) if claims.reads(i)] == \
        ["0000000004"]
    assert sorted(n.id for n in claims.nodes()) == ["0000000001",
                                                    "0000000002"]
    store.nodes.discard("0000000002")   # deleted: gone from the count
    claims = b.claims()
    assert [n.id for n in claims.nodes()] == ["0000000001"]
    clock.now += CLAIM_GRACE
    claims = b.claims()
    assert claims.reads("0000000003") and not claims.reads("0000000001")


def test_a_young_unclaimed_node_counts_at_the_bound_then_is_read():
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {})   # a live peer
    store.nodes.add("0000000009")     # the peer's, not in its record yet
    bound = Quota(instances=1, cores=8)
    claims = b.claims()
    assert not claims.reads("0000000009")
    stand_ins = claims.nodes("p", "main", bound)
    assert [(n.id, n.provider, n.pool, n.resources) for n in stand_ins] == \
        [("0000000009", "p", "main", {"instances": 1, "cores": 8})]
    clock.now += CLAIM_GRACE - 0.1
    assert not b.claims().reads("0000000009")
    clock.now += 0.1
    claims = b.claims()
    assert claims.reads("0000000009")        # old: read, counted as read
    assert claims.nodes("p", "main", bound) == []


def test_a_node_claimed_later_is_counted_from_the_record():
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {})
    store.nodes.add("0000000009")
    assert not b.claims().reads("0000000009")
    peer_record(store, "nl2-x", {"0000000009": summary(cores=2)})
    claims = b.claims()
    assert not claims.reads("0000000009")
    assert [n.resources for n in claims.nodes("p", "main", Quota(
        instances=1, cores=8))] == [{"instances": 1, "cores": 2}]


def test_a_bad_peer_record_is_skipped_once_and_its_nodes_read(caplog):
    store, clock = Store(), Clock()
    b = book(store, clock)
    store.records["nl3-y"] = (b"{oops", 7)
    store.nodes.add("0000000005")
    with caplog.at_level(logging.WARNING):
        # No readable record: no live peer to wait for, read at once.
        assert b.claims().reads("0000000005")
        b.claims()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "/nodepool/launcher-usage/nl3-y" in said[0] \
        and "invalid JSON" in said[0]


def test_a_dead_peer_whose_record_went_is_read_again():
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {"0000000001": summary()})
    peer_record(store, "nl3-y", {})
    assert not b.claims().reads("0000000001")
    del store.records["nl2-x"]            # its session expired
    assert not b.claims().reads("0000000001")   # young once unclaimed
    clock.now += CLAIM_GRACE
    assert b.claims().reads("0000000001")
    del store.records["nl3-y"]
    store.nodes.add("0000000002")
    assert b.claims().reads("0000000002")   # no live peer: read at once


def test_without_live_peers_no_node_is_held_back():
    # Nodes of upstream launchers, or there before we started: read at
    # once (the ready ones are spares to hand out right away).
    store, clock = Store(), Clock()
    b = book(store, clock)
    store.nodes |= {"0000000001", "0000000002"}
    claims = b.claims()
    assert claims.reads("0000000001") and claims.reads("0000000002")
    assert claims.nodes("p", "main", Quota(instances=1)) == []


def test_bound_cost_takes_the_most_of_each_resource():
    assert bound_cost([Quota(instances=1, cores=2, ram=100),
                       Quota(instances=1, cores=8, ram=50)]).values == \
        {"instances": 1, "cores": 8, "ram": 100}
    assert bound_cost([]).values == {"instances": 1}


def test_quota_never_overcounts_free_room_with_unclaimed_nodes():
    # max-servers 5: two claimed by a peer, one we read, two young and
    # unclaimed (bound): nothing fits; once one of the young is claimed
    # and the other deleted, one fits.
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {"0000000001": summary(),
                                 "0000000002": summary()})
    ours = Node(provider="p", pool="main", state="ready",
                resources={"instances": 1})
    ours.id = "0000000003"
    store.nodes |= {"0000000003", "0000000004", "0000000005"}
    store.created.add("0000000003")
    all_nodes = {"0000000003": ours}

    def costed():
        claims = b.claims()     # as iter_nodes asks of every id:
        read = [all_nodes[i] for i in sorted(store.nodes)
                if claims.reads(i)]
        return read + claims.nodes("p", "main", Quota(instances=1))

    pool = Pool(name="main", provider_name="p", max_servers=5)
    quota = PoolQuota(pool, "p", nodes=costed,
                      label_cost=lambda label: Quota(instances=1),
                      node_cost=lambda n: Quota.from_resources(n.resources),
                      provider_limits=Quota, provider_used=lambda n: Quota(),
                      clock=clock)
    assert not quota.check(Quota(instances=1))
    peer_record(store, "nl2-x", {"0000000001": summary(),
                                 "0000000002": summary(),
                                 "0000000004": summary()})
    store.nodes.discard("0000000005")
    clock.now += 1
    assert quota.reserve(Quota(instances=1))
    assert not quota.reserve(Quota(instances=1))


def test_possible_spares_and_tenant_nodes_are_read_when_asked():
    store, clock = Store(), Clock()
    b = book(store, clock)
    spare = NodeSummary("p", "main", "ready", ("small",), {"instances": 1})
    taken = NodeSummary("p", "main", "ready", ("small",), {"instances": 1},
                        allocated_to="200-0000000001")
    peer_record(store, "nl2-x", {"0000000001": spare,
                                 "0000000002": taken,
                                 "0000000003": summary(state="in-use")})
    store.nodes.add("0000000004")           # young, unclaimed
    claims = b.claims()
    assert [i for i in sorted(store.nodes) if claims.reads_ready(i)] == \
        ["0000000001"]
    claims = b.claims()
    assert claims.reads_ready("0000000004", young=True)   # tenant limits
    stand_in = {n.id: n for n in claims.nodes()}["0000000002"]
    assert stand_in.allocated_to == "200-0000000001"


def test_a_peer_record_is_parsed_once_per_version():
    store, clock = Store(), Clock()
    b = book(store, clock)
    peer_record(store, "nl2-x", {"0000000001": summary()})
    first = b.records()
    assert b.records()[0] is first[0]
    peer_record(store, "nl2-x", {"0000000001": summary(state="used")})
    store.records["nl2-x"] = (store.records["nl2-x"][0], 1)   # new mzxid
    assert b.records()[0].nodes["0000000001"].state == "used"


def test_without_live_peers_young_nodes_are_possible_spares():
    # Ready nodes an upstream launcher left (or there before we started)
    # are handed out at once; with a live peer, a young unclaimed node is
    # most likely its new one and waits for its record.
    store, clock = Store(), Clock()
    b = book(store, clock)
    store.nodes |= {"0000000001", "0000000002"}
    claims = b.claims()
    assert [i for i in sorted(store.nodes) if claims.reads_ready(i)] == \
        ["0000000001", "0000000002"]
    peer_record(store, "nl2-x", {})
    store.nodes.add("0000000003")
    claims = b.claims()
    assert not claims.reads_ready("0000000003")
