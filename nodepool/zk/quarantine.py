"""Quarantined znodes: records a store read but could not use.

A znode is quarantined when its payload is not a JSON object or does not
fit its record's schema (``schema.py``).  The stores then skip it: it is
never handed out, never counted as capacity, never sorted among the
requests.  :class:`Quarantine` remembers each such znode version once:

* one warning per znode version, naming the path and the field
  (``Skipping znode /nodepool/nodes/0000000042: field 'state_time':
  expected a number or null, got a string``);
* a counter per record kind (``node``, ``request``, ``component``,
  ``image``, ``offering``) of the versions quarantined since start, which
  the launcher exports (``/metrics``: ``nodepool_bad_records_total``; statsd:
  ``nodepool.zk.bad_records.<kind>``) through :meth:`add_listener`;
* the current entry of each path, so readers can list what is quarantined
  now (the CLI prints one line per bad znode; pool workers decline
  unreadable requests addressed to them, ``launcher/unreadable.py``).

A path whose znode is read fine again (fixed by an operator) or is gone
leaves the quarantine (:meth:`release`, :meth:`prune`).

Failure story: nothing here talks to ZooKeeper; a listener that raises is
logged at debug level and ignored (metrics never stop a reader), and the
tables are bounded, so a flood of bad znodes costs memory up to a limit and
then only re-reports old versions.

Threads: any reader thread may report; a lock guards the tables and
listeners are called outside it, on the reporting thread, so they must be
quick (a statsd send).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .paths import COMPONENTS, IMAGES, NODES, OFFERINGS, REQUESTS

__all__ = ["Quarantine", "Quarantined", "kind_of"]

# Entries and reported versions kept at most (a flood of bad znodes must
# not grow memory without bound; past it, old versions may be re-reported).
_MEMORY = 10000

_KINDS = ((NODES + "/", "node"), (REQUESTS + "/", "request"),
          (COMPONENTS + "/", "component"), (IMAGES + "/", "image"),
          (OFFERINGS + "/", "offering"))


def kind_of(path: str) -> str:
    """The record kind a znode path holds (``other`` if none)."""
    for prefix, kind in _KINDS:
        if path.startswith(prefix):
            return kind
    return "other"


@dataclass(frozen=True)
class Quarantined:
    """One quarantined znode version."""

    kind: str
    path: str
    mzxid: int
    reason: str

    @property
    def name(self) -> str:
        """The znode's last path component (a node or request id)."""
        return self.path.rsplit("/", 1)[-1]


Listener = Callable[[Quarantined], None]


class Quarantine:
    """Bookkeeping of quarantined znodes for one ZooKeeper facade."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._reported: set[tuple[str, int]] = set()
        self._current: dict[str, Quarantined] = {}
        self._counts: Counter[str] = Counter()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """``listener(entry)`` for every newly quarantined znode version."""
        with self._lock:
            self._listeners.append(listener)

    def report(self, path: str, stat: Any, reason: str) -> Quarantined:
        """Quarantine this version of ``path``: the first time, log one
        warning, count it and tell the listeners."""
        entry = Quarantined(kind_of(path), path,
                            getattr(stat, "mzxid", 0), reason)
        key = (path, entry.mzxid)
        with self._lock:
            new = key not in self._reported
            if new:
                if len(self._reported) >= _MEMORY:
                    self._reported.clear()
                self._reported.add(key)
                self._counts[entry.kind] += 1
            if path in self._current or len(self._current) < _MEMORY:
                self._current[path] = entry
            listeners = list(self._listeners) if new else []
        if new:
            self.log.warning("Skipping znode %s: %s", path, reason)
        for listener in listeners:
            try:
                listener(entry)
            except Exception:   # metrics must never stop a reader
                self.log.debug("Quarantine listener failed", exc_info=True)
        return entry

    def release(self, path: str) -> None:
        """``path`` was read fine (or is gone): no longer quarantined."""
        if path in self._current:
            with self._lock:
                self._current.pop(path, None)

    def prune(self, keep: Callable[[Quarantined], bool]) -> None:
        """Drop the current entries ``keep`` rejects (gone, changed)."""
        with self._lock:
            stale = [p for p, e in self._current.items() if not keep(e)]
            for path in stale:
                del self._current[path]

    def current(self, kind: str | None = None) -> list[Quarantined]:
        """Entries quarantined now, in path order."""
        with self._lock:
            entries = list(self._current.values())
        return sorted((e for e in entries if kind is None or e.kind == kind),
                      key=lambda e: e.path)

    def counts(self) -> dict[str, int]:
        """Znode versions quarantined since start, by kind."""
        with self._lock:
            return dict(self._counts)

    @staticmethod
    def by_kind(entries: Iterable[Quarantined]) -> dict[str, int]:
        return dict(Counter(e.kind for e in entries))
