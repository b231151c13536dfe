"""StatsElection alone, through its ``Daemon`` and ``Election`` seams: a
fake election the test wins or breaks, caches the test fills, a recording
stats client, and no ZooKeeper server."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from nodepool.launcher.statsleader import (ELECTION_PATH, StatsElection,
                                           addressable)
from nodepool.launcher.usagebook import ALONE
from nodepool.zk.models import Node, NodeRequest, NodeState
from tests.unit.launcher.fakes import Counter


class Election:
    """Elected at once; ``broken`` runs raise (an interrupted election)."""

    def __init__(self, path, ident, broken=0):
        self.path, self.ident = path, ident
        self.broken = broken
        self.runs = Counter()
        self.cancelled = threading.Event()

    def cancel(self):
        self.cancelled.set()

    def run(self, fn):
        self.runs.tick()
        if self.runs.count <= self.broken:
            raise RuntimeError("connection dropped")
        fn()


class Stats:
    enabled = True

    def __init__(self):
        self.gauges: list[tuple] = []
        self.addressable: list[tuple] = []
        self.emits = Counter()

    def node_gauges(self, nodes, providers, labels):
        self.gauges.append(([n.id for n in nodes], providers, labels))
        self.emits.tick()

    def addressable_requests(self, provider, pool, count):
        self.addressable.append((provider, pool, count))


class Caches:
    def __init__(self):
        self.nodes: list[Node] = []
        self.requests: list[NodeRequest] = []

    def iter_nodes(self, cached=True, shared=False, ids=None):
        assert cached, "the gauges come from the watch cache"
        return iter([n for n in self.nodes if ids is None or ids(n.id)])

    def iter_requests(self, cached=True, shared=False, current=True):
        assert cached, "the gauges come from the watch cache"
        return list(self.requests)


class Daemon:
    def __init__(self):
        self.zk = Caches()
        self.stats = Stats()
        self.usage = ALONE
        self.ready = True
        self.components = []
        self.workers = {}

    def zk_ready(self):
        return self.ready

    def pool_components(self, fresh=False):
        return list(self.components)

    def pool_workers(self):
        return dict(self.workers)

    def add_pool(self, provider, pool, labels):
        self.components.append(SimpleNamespace(
            provider_name=provider, supported_labels=list(labels)))
        self.workers[f"{provider}-{pool}"] = SimpleNamespace(
            provider=SimpleNamespace(name=provider),
            pool=SimpleNamespace(name=pool), supported_labels=set(labels))


def request(*labels):
    return NodeRequest(id=f"100-{len(labels):010d}", node_types=list(labels))


@pytest.fixture
def daemon():
    d = Daemon()
    d.add_pool("aws", "main", ["small", "large"])
    d.add_pool("os", "main", ["small"])
    return d


@pytest.fixture
def elected():
    made = []

    def make(daemon, broken=0):
        def elect(path, ident):
            made.append(Election(path, ident, broken))
            return made[-1]
        stats_election = StatsElection(daemon, elect, interval=0.01)
        stats_election.retry_delay = 0.01
        started.append(stats_election)
        stats_election.start()
        return stats_election, made[-1]
    started: list[StatsElection] = []
    yield make
    for stats_election in started:
        stats_election.stop()
        assert not stats_election._thread.is_alive()


def test_emit_gauges_nodes_by_provider_and_label(daemon):
    daemon.zk.nodes = [Node(id="0000000001", state=NodeState.READY),
                       Node(id="0000000002", state=NodeState.BUILDING)]
    StatsElection(daemon, elect=None).emit()
    assert daemon.stats.gauges == [(["0000000001", "0000000002"],
                                    ["aws", "os"], ["large", "small"])]


def test_emit_counts_the_requests_each_pool_could_serve(daemon):
    daemon.zk.requests = [request("small"), request("small", "large"),
                          request("gpu"), request("small", "gpu")]
    StatsElection(daemon, elect=None).emit()
    assert sorted(daemon.stats.addressable) == [("aws", "main", 2),
                                                ("os", "main", 1)]


def test_addressable_needs_every_label_of_a_request():
    requests = [request("a"), request("a", "b"), request("c")]
    assert addressable(requests, {"a"}) == 1
    assert addressable(requests, {"a", "b"}) == 2
    assert addressable(requests, set()) == 0


def test_the_leader_emits_every_interval(daemon, elected):
    stats_election, election = elected(daemon)
    assert election.path == ELECTION_PATH
    assert daemon.stats.emits.wait(3)
    assert stats_election.leading.is_set()


def test_an_unusable_session_ends_the_leadership_then_it_campaigns_again(
        daemon, elected):
    stats_election, election = elected(daemon)
    assert daemon.stats.emits.wait(1)
    daemon.ready = False
    # stepping down returns from the election's run: it is run again
    assert election.runs.wait(3)
    assert not stats_election.leading.is_set()
    emitted = daemon.stats.emits.count
    assert election.runs.wait(5)
    assert daemon.stats.emits.count == emitted
    daemon.ready = True
    assert daemon.stats.emits.wait(emitted + 1)


def test_an_interrupted_election_is_joined_again(daemon, elected):
    stats_election, election = elected(daemon, broken=2)
    assert daemon.stats.emits.wait(1)
    assert election.runs.count == 3


def test_stop_cancels_the_election(daemon, elected):
    stats_election, election = elected(daemon)
    assert daemon.stats.emits.wait(1)
    stats_election.stop()
    assert not stats_election._thread.is_alive()
    assert election.cancelled.is_set()
    assert not stats_election.leading.is_set()


def test_start_twice_is_refused(daemon, elected):
    stats_election, _ = elected(daemon)
    with pytest.raises(RuntimeError, match="already started"):
        stats_election.start()
