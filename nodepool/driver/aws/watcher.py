"""InstanceWatcher: the state of every instance in flight, from few calls.

Upstream polled with a 10 s cache, so a node waited up to 10 s after its
instance was running.  Here one thread keeps the set of instance ids that
create and delete machines wait on and asks about all of them at once,
every ``interval`` seconds (0.5) while the set is not empty, and at once
(after ``min_gap``) when a new id is added.  Machines read the latest
record with ``lookup`` -- a dict access on the loop thread, never a call.

Two calls per poll at most, cheap first:

1. ``status(ids)``: DescribeInstanceStatus for the ids -- a few fields per
   instance, about a tenth of the client CPU of a full DescribeInstances
   record (botocore's parsing is what a poll costs);
2. ``describe(filters)``: full records only for ids that just turned
   ``running`` (addresses, tags, placement are needed once, to build the
   ``Instance``), so each instance is fully parsed about once.

A record published as ``running`` is always a full record; other states
may be minimal (``InstanceId`` and ``State`` only).

Eventual consistency: EC2 may not know a brand-new id for a moment, and
DescribeInstanceStatus then fails the whole call (NotFound).  That poll
falls back to one ``instance-id`` *filtered* DescribeInstances, where an
unknown id is just absent from the answer.  Without a ``status`` callable
every poll is the filtered DescribeInstances.

Failure story: a failed or throttled poll (the read limiter is told by
AwsApi) is logged; the watcher keeps the previous records and tries again
after the next interval, so machines simply wait longer.  ``stop()`` ends
the thread; lookups then return the last records.  Ids watched longer
than ``expire`` seconds (a machine that was dropped without unwatching)
are forgotten.

Threads: one, ``<provider>-describe``, the only writer of ``_records``.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from nodepool.driver import errors
from nodepool.driver.backoff import log_failure
from nodepool.driver.watchset import Lookup, Record, WatchSet

__all__ = ["InstanceWatcher", "Lookup"]

log = logging.getLogger(__name__)

CHUNK = 100      # ids per call


class InstanceWatcher(WatchSet):
    """See the module docstring.

    ``describe(filters)`` returns full instance records for EC2 filters;
    ``status(ids)`` returns ``{id: state name}`` and raises
    ``NotFoundError`` when an id is unknown.
    """

    THREAD = "describe"
    KIND = "Watcher"

    def __init__(self, name: str, describe: Callable[[list[dict]], list],
                 status: Callable[[list[str]], dict[str, str]] | None = None,
                 interval: float = 0.5, min_gap: float = 0.1,
                 expire: float = 4 * 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(name, interval, min_gap, expire, clock)
        self.counts = {"polls": 0, "status_calls": 0, "full_calls": 0,
                       "full_records": 0, "errors": 0}
        self.last_duration = 0.0
        self._describe = describe
        self._status = status
        self._records: dict[str, Record] = {}
        self._last_done_start = -1e9     # start of the last finished poll

    # -- public ---------------------------------------------------------------
    def lookup(self, instance_id: str) -> Lookup:
        with self._cond:
            since = self._watched.get(instance_id)
            fresh = since is not None and self._last_done_start >= since
            return Lookup(self._records.get(instance_id), fresh)

    def stats(self) -> dict:
        return {"watched": self.watched, **self.counts,
                "last_duration": round(self.last_duration, 3)}

    # -- the thread -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wait_for_turn():
                    return
                ids = list(self._watched)
                started = self._last_start
                known = {i: self._records[i] for i in ids
                         if i in self._records}
            records = self._poll(ids, known)
            with self._cond:
                self.last_duration = self._clock() - started
                if records is not None:
                    self._publish(ids, records, started)

    def _publish(self, ids: list[str], records: dict[str, Record],
                 started: float) -> None:
        for iid in ids:
            if iid not in self._watched:
                continue                  # unwatched while we asked
            record = records.get(iid)
            if record is None:
                self._records.pop(iid, None)
            else:
                self._records[iid] = record
        self._last_done_start = started

    def _forget(self, rid: str) -> None:
        self._records.pop(rid, None)

    # -- one poll (outside the lock) ------------------------------------------
    def _poll(self, ids: list[str], known: dict[str, Record]
              ) -> dict[str, Record] | None:
        self.counts["polls"] += 1
        try:
            states = self._states(ids)
            if states is None:
                return self._full(ids)
            return self._merge(states, known)
        except Exception as e:
            self.counts["errors"] += 1
            log_failure(log, e, "Watcher %s: polling %d instances failed: "
                        "%s", self.name, len(ids), e)
            return None

    def _states(self, ids: list[str]) -> dict[str, str] | None:
        """State names by id, or None when a full describe is needed."""
        if self._status is None:
            return None
        states: dict[str, str] = {}
        try:
            for start in range(0, len(ids), CHUNK):
                self.counts["status_calls"] += 1
                states.update(self._status(ids[start:start + CHUNK]))
        except errors.NotFoundError:
            return None                   # a new id not visible yet
        return states

    def _full(self, ids: list[str]) -> dict[str, Record]:
        out: dict[str, Record] = {}
        for start in range(0, len(ids), CHUNK):
            self.counts["full_calls"] += 1
            chunk = ids[start:start + CHUNK]
            for record in self._describe([{"Name": "instance-id",
                                           "Values": chunk}]):
                out[record["InstanceId"]] = record
        self.counts["full_records"] += len(out)
        return out

    def _merge(self, states: dict[str, str], known: dict[str, Record]
               ) -> dict[str, Record]:
        """Minimal records, plus full ones for ids that just turned running."""
        need = [i for i, state in states.items() if state == "running"
                and _state(known.get(i)) != "running"]
        full = self._full(need) if need else {}
        out: dict[str, Record] = {}
        for iid, state in states.items():
            if iid in full:
                out[iid] = full[iid]
            elif state == "running":
                previous = known.get(iid)
                if _state(previous) == "running":
                    out[iid] = previous     # already full
                else:                       # full record not visible yet
                    out[iid] = previous or _minimal(iid, "pending")
            else:
                out[iid] = _minimal(iid, state)
        return out


def _state(record: Record | None) -> str | None:
    return (record or {}).get("State", {}).get("Name")


def _minimal(instance_id: str, state: str) -> Record:
    return {"InstanceId": instance_id, "State": {"Name": state}}
