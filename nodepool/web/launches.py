"""LaunchRecorder: launch counts, a latency histogram and recent errors.

The statsd reporter sends each finished launch attempt away; the web app
needs to keep them: Prometheus counters and histograms must be cumulative
for the life of the process, and the status page shows the latest failures.
The recorder listens to ``nodepool.launcher.nodelaunch`` launch events
(``start()``/``stop()`` add and remove the listener) and keeps only those
that ``accept`` (the web app's own launcher's providers: tests run several
launchers in one process).

Failure messages are shortened to ``MESSAGE_LIMIT`` characters: they come
from cloud SDKs and can be long; they are shown as plain text.

Thread safety: ``record`` runs on provider loop threads (and, for a lost
ZooKeeper session, on kazoo's thread); readers run on web threads.  One
lock guards everything, and readers get copies.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from nodepool.launcher.nodelaunch import (LaunchEvent, add_launch_listener,
                                            remove_launch_listener)

__all__ = ["LaunchRecorder", "LaunchError", "Histogram", "LATENCY_BUCKETS"]

# Seconds.  Fake and local clouds launch in well under a second, real
# clouds in one to ten minutes; both ends need resolution.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
MESSAGE_LIMIT = 300
KEEP_ERRORS = 50


@dataclass
class LaunchError:
    time: float                 # epoch seconds
    provider: str
    node_id: str | None
    result: str                 # "error.<kind>"
    message: str


@dataclass
class Histogram:
    """Cumulative counts per upper bound (``+Inf`` last), sum and count."""

    buckets: list[int]          # one per LATENCY_BUCKETS entry, then +Inf
    sum: float = 0.0
    count: int = 0

    @classmethod
    def empty(cls) -> "Histogram":
        return cls([0] * (len(LATENCY_BUCKETS) + 1))

    def observe(self, value: float) -> None:
        # Non-cumulative storage; ``cumulative()`` adds up when read.
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) pairs, ``inf`` last."""
        out, total = [], 0
        bounds = [float(b) for b in LATENCY_BUCKETS] + [math.inf]
        for bound, n in zip(bounds, self.buckets):
            total += n
            out.append((bound, total))
        return out


class LaunchRecorder:
    """Keeps launch results of the providers ``accept`` lets through."""

    def __init__(self, accept: Callable[[LaunchEvent], bool] = lambda e: True,
                 keep_errors: int = KEEP_ERRORS):
        self._accept = accept
        self._lock = threading.Lock()
        self._histograms: dict[tuple[str, str], Histogram] = {}
        self._errors: deque[LaunchError] = deque(maxlen=keep_errors)
        self._started = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError("launch recorder already started")
        self._started = True
        add_launch_listener(self.record)

    def stop(self) -> None:
        remove_launch_listener(self.record)

    def record(self, event: LaunchEvent) -> None:
        if not self._accept(event):
            return
        key = (event.provider, event.result)
        with self._lock:
            histogram = self._histograms.get(key)
            if histogram is None:
                histogram = self._histograms[key] = Histogram.empty()
            histogram.observe(max(0.0, event.elapsed))
            if event.result != "ready":
                message = (event.message or event.result)[:MESSAGE_LIMIT]
                self._errors.append(LaunchError(
                    event.time, event.provider, event.node_id, event.result,
                    message))

    def histograms(self) -> dict[tuple[str, str], Histogram]:
        """(provider, result) -> a copy of its latency histogram."""
        with self._lock:
            return {k: Histogram(list(h.buckets), h.sum, h.count)
                    for k, h in self._histograms.items()}

    def recent_errors(self, limit: int = 20) -> list[LaunchError]:
        """The latest failures, newest first."""
        with self._lock:
            errors = list(self._errors)
        return errors[::-1][:limit]
