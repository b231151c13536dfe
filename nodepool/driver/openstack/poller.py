"""ServerPoller: one server list for every server in flight, cached ~1 s.

Upstream polled each server on its own (or a 10 s cache of the list), so
either the API calls grew with the nodes in flight or a node waited up to
10 s after going ACTIVE.  Here one thread keeps the set of server ids that
create and delete machines wait on and, while it is not empty, lists all
servers (``GET /servers/detail``, paged) every ``interval`` seconds (1.0);
a newly watched id triggers a poll after ``min_gap`` (0.5 s) at the
earliest, so a stream of launches costs at most two lists a second.
Machines read the latest record with ``lookup`` (a dict access on the loop
thread, never a call).  The whole list is kept as a snapshot, which
``list_instances`` reuses while it is younger than a couple of seconds.

A lookup is ``fresh`` once a poll that *started* after ``watch()`` has
finished: only then does "not in the list" mean "gone" (a brand-new server
may not be listed by a poll that was already under way).

Failure story: a failed poll is logged and counted; the previous records
stay and the next poll comes after ``interval``, so machines only wait
longer (their launch timeout still applies).  Ids watched longer than
``expire`` seconds (a machine dropped without ``unwatch``) are forgotten.

Threads: one, ``<provider>-servers``, the only writer of the records; the
state is shared under one condition variable.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from nodepool.driver.backoff import log_failure
from nodepool.driver.watchset import Lookup, Record, WatchSet

__all__ = ["ServerPoller", "Lookup"]

log = logging.getLogger(__name__)


class ServerPoller(WatchSet):
    """See the module docstring; ``fetch()`` returns all server records."""

    THREAD = "servers"
    KIND = "Poller"

    def __init__(self, name: str, fetch: Callable[[], list[Record]],
                 interval: float = 1.0, min_gap: float = 0.5,
                 expire: float = 4 * 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(name, interval, min_gap, expire, clock)
        self.counts = {"polls": 0, "errors": 0}
        self._fetch = fetch
        self._records: dict[str, Record] = {}
        self._snapshot: tuple[float, list[Record]] | None = None

    # -- machines --------------------------------------------------------
    def lookup(self, server_id: str) -> Lookup:
        with self._cond:
            since = self._watched.get(server_id)
            snapshot = self._snapshot
            fresh = (since is not None and snapshot is not None
                     and snapshot[0] > since)
            return Lookup(self._records.get(server_id), fresh)

    def latest(self, server_id: str) -> Record | None:
        """The last listed record of any server (watched or not)."""
        with self._cond:
            return self._records.get(server_id)

    # -- the whole list --------------------------------------------------
    def snapshot(self, max_age: float) -> list[Record] | None:
        """The last full list if it is at most ``max_age`` seconds old."""
        with self._cond:
            if self._snapshot is None:
                return None
            started, records = self._snapshot
            if self._clock() - started > max_age:
                return None
            return list(records)

    def publish(self, records: list[Record], started: float) -> None:
        """Store a full list fetched by someone else (list_instances)."""
        with self._cond:
            if self._snapshot is not None and self._snapshot[0] > started:
                return                     # a newer poll already landed
            self._snapshot = (started, list(records))
            self._records = {r["id"]: r for r in records}

    def now(self) -> float:
        return self._clock()

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wait_for_turn():
                    return
                started = self._last_start
            self.counts["polls"] += 1
            try:
                records = self._fetch()
            except Exception as e:
                self.counts["errors"] += 1
                log_failure(log, e, "Poller %s: listing servers failed: %s",
                            self.name, e)
                continue
            self.publish(records, started)
