"""Node-state gauges from exactly one launcher: the stats election leader.

Threads: ``StatsElection`` runs an election (kazoo's Election recipe at
``/nodepool/elections/stats``, identifier ``<hostname>-<pid>``).  While it
leads it emits the node gauges (cli.md §4) and the pools' addressable
request gauges every ``interval`` (a second), from the watch caches --
nothing at all while statsd is not configured (nothing would be sent, so
nothing is read).  Nodes a live peer's usage record claims are counted from
that record, not read (``usagebook.py``); a young node no record claims
yet is left out until it is claimed or ``CLAIM_GRACE`` old (then read).

Failure story: leadership lasts while the ZooKeeper session is usable
(``Daemon.zk_ready()``); once it is not, the leader steps down and
campaigns again (the recipe's znode is ephemeral, so a lost session ends
the leadership in ZooKeeper too).  An election interrupted by an error is
logged at debug level and joined again after ``retry_delay``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable, Iterable, Protocol

ELECTION_PATH = "/nodepool/elections/stats"
RETRY_DELAY = 1.0


class Election(Protocol):
    """kazoo's ``Election``: ``run`` blocks until elected, calls ``fn``
    and returns when ``fn`` does (leadership ends with it); ``cancel``
    makes a waiting ``run`` return."""

    def run(self, fn: Callable[[], None]) -> None: ...

    def cancel(self) -> None: ...


class Daemon(Protocol):
    """What the stats election uses of its daemon (``Launcher``): the
    caches of nodes, requests and pool components, the stats client, the
    session's state, and of each pool worker its ``provider``, ``pool``
    and ``supported_labels``."""

    zk: object          # ``iter_nodes``/``iter_requests`` (cached, shared)
    stats: object       # ``enabled``, ``node_gauges``, ``addressable_requests``
    usage: object       # nodepool.launcher.usagebook.UsageBook (claims)

    def zk_ready(self) -> bool: ...

    def pool_components(self, fresh: bool = False) -> list: ...

    def pool_workers(self) -> dict: ...


class StatsElection:
    """``elect(path, identifier)`` makes the election (the launcher passes
    its kazoo client's ``Election``)."""

    retry_delay = RETRY_DELAY

    def __init__(self, daemon: Daemon,
                 elect: Callable[[str, str], Election],
                 interval: float = 1.0):
        self.daemon = daemon
        self.elect = elect
        self.interval = interval
        self.log = logging.getLogger("nodepool.StatsElection")
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._election: Election | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("stats election already started")
        ident = f"{socket.gethostname()}-{os.getpid()}"
        self._election = self.elect(ELECTION_PATH, ident)
        self._thread = threading.Thread(target=self._run,
                                        name="StatsElection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._election is not None:
            try:
                self._election.cancel()
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._election.run(self._lead)
            except Exception as e:
                self.log.debug("Stats election interrupted: %s", e)
            self._stop.wait(self.retry_delay)

    def _lead(self) -> None:
        self.leading.set()
        try:
            while not self._stop.is_set() and self.daemon.zk_ready():
                self.emit()
                self._stop.wait(self.interval)
        finally:
            self.leading.clear()

    def emit(self) -> None:
        daemon = self.daemon
        if not daemon.stats.enabled:
            return
        claims = daemon.usage.claims()
        nodes = list(daemon.zk.iter_nodes(cached=True, shared=True,
                                          ids=claims.reads))
        nodes += claims.nodes()
        comps = daemon.pool_components()
        providers = {c.provider_name for c in comps}
        labels: set[str] = set()
        for c in comps:
            labels |= set(c.supported_labels or [])
        daemon.stats.node_gauges(nodes, sorted(providers), sorted(labels))
        # node_types only, which a request never changes: any version
        # read before will do (no read of each change of every request).
        requests = daemon.zk.iter_requests(cached=True, shared=True,
                                           current=False)
        for worker in daemon.pool_workers().values():
            daemon.stats.addressable_requests(
                worker.provider.name, worker.pool.name,
                addressable(requests, worker.supported_labels))


def addressable(requests: Iterable, labels: set[str]) -> int:
    """How many of ``requests`` ask only for labels in ``labels``."""
    return sum(1 for r in requests if set(r.node_types) <= labels)
