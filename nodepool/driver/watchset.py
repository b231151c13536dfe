"""WatchSet: the ids machines wait on, and the thread that polls for them.

Cloud drivers whose create and delete machines wait for instances to change
state keep one background poller per provider instead of one call per
machine: machines ``watch()`` an id, read its latest record with
``lookup()`` (a dict access on the loop thread, never a call) and
``unwatch()`` it when done.  This base class holds what every such poller
shares: the watched ids (with the time each was added), the poll schedule
(every ``interval`` seconds while anything is watched, and ``min_gap``
after a new id at the earliest), the thread's lifecycle, and forgetting
ids watched longer than ``expire`` (a machine dropped without
``unwatch``).  Subclasses implement ``_run`` (the poll itself, outside the
lock) and keep their records; ``_forget(id)`` drops an id's record.

Threads: one, ``<name>-<thread>``, started by ``start()``; state is shared
under one condition variable, ``_cond``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["WatchSet", "Lookup", "Record"]

log = logging.getLogger(__name__)

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Lookup:
    """A watched id's latest record; ``fresh`` once a poll that started
    after ``watch()`` has finished (so None then means "not there")."""

    record: Record | None
    fresh: bool


class WatchSet:
    """See the module docstring."""

    #: names the thread (``<name>-<THREAD>``) and the poller in messages
    THREAD = "poll"
    KIND = "Poller"

    def __init__(self, name: str, interval: float, min_gap: float,
                 expire: float, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.interval = interval
        self.min_gap = min_gap
        self.expire = expire
        self._clock = clock
        self._cond = threading.Condition()
        self._watched: dict[str, float] = {}      # id -> watch() time
        self._last_start = -1e9          # clock when the last poll began
        self._urgent = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(
                    f"{self.KIND.lower()} {self.name} already started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-{self.THREAD}",
                daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    # -- machines -------------------------------------------------------------
    def watch(self, rid: str) -> None:
        with self._cond:
            if rid in self._watched:
                return
            self._watched[rid] = self._clock()
            self._urgent = True
            self._cond.notify()

    def unwatch(self, rid: str) -> None:
        with self._cond:
            self._watched.pop(rid, None)
            self._forget(rid)

    @property
    def watched(self) -> int:
        with self._cond:
            return len(self._watched)

    # -- for subclasses -------------------------------------------------------
    def _run(self) -> None:
        raise NotImplementedError

    def _forget(self, rid: str) -> None:
        """Under the lock: ``rid`` is no longer watched."""

    def _wait_for_turn(self) -> bool:
        """Under the lock: block until a poll is due (then mark it begun:
        ``_last_start``); False when stopping."""
        while not self._stopping:
            self._expire()
            if self._watched:
                gap = self.min_gap if self._urgent else self.interval
                wait = self._last_start + gap - self._clock()
                if wait <= 0:
                    self._urgent = False
                    self._last_start = self._clock()
                    return True
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return False

    def _expire(self) -> None:
        limit = self._clock() - self.expire
        for rid in [i for i, t in self._watched.items() if t < limit]:
            log.warning("%s %s: forgetting %s, watched for %.0fs",
                        self.KIND, self.name, rid, self.expire)
            self._watched.pop(rid)
            self._forget(rid)
