"""Node-state gauges from exactly one launcher: the stats election leader.

Thread: ``StatsElection`` runs kazoo's Election recipe at
``/nodepool/elections/stats`` (identifier ``<hostname>-<pid>``).  While it
leads it emits the node gauges (cli.md §4) at most once a second, and only
when the node cache changed.  Losing the session ends the leadership (the
recipe's znode is ephemeral); the thread then campaigns again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

ELECTION_PATH = "/nodepool/elections/stats"


class StatsElection:
    def __init__(self, launcher, interval: float = 1.0):
        self.launcher = launcher
        self.interval = interval
        self.log = logging.getLogger("nodepool.StatsElection")
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._election = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("stats election already started")
        ident = f"{socket.gethostname()}-{os.getpid()}"
        self._election = self.launcher.client.kazoo.Election(ELECTION_PATH,
                                                             ident)
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
            self._stop.wait(1.0)

    def _lead(self) -> None:
        self.leading.set()
        try:
            while not self._stop.is_set() and self.launcher.zk_ready():
                self.emit()
                self._stop.wait(self.interval)
        finally:
            self.leading.clear()

    def emit(self) -> None:
        launcher = self.launcher
        nodes = list(launcher.zk.iter_nodes(cached=True, shared=True))
        comps = launcher.pool_components()
        providers = {c.provider_name for c in comps}
        labels = set()
        for c in comps:
            labels |= set(c.supported_labels or [])
        launcher.stats.node_gauges(nodes, sorted(providers), sorted(labels))
        requests = launcher.zk.iter_requests(cached=True, shared=True)
        for worker in launcher.pool_workers().values():
            count = sum(1 for r in requests
                        if set(r.node_types) <= worker.supported_labels)
            launcher.stats.addressable_requests(
                worker.provider.name, worker.pool.name, count)
