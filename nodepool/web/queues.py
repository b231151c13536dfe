"""QueueRecorder: how long fulfilled requests waited, per label.

The pool workers report each request they fulfil (``nodepool.launcher.
waits.add_queue_listener``: seconds from the request's ``created_time`` to
its fulfilment, min-ready requests left out); the recorder keeps one
cumulative histogram per label for ``/metrics``
(``nodepool_label_request_queue_seconds{label}``), only for the events
``accept`` lets through (the web app's own launcher: tests run several
launchers in one process).

Thread safety: ``record`` runs on pool worker threads, readers on web
threads; one lock guards the histograms and readers get copies.
"""

from __future__ import annotations

import threading
from typing import Callable

from nodepool.launcher.waits import (QueueEvent, add_queue_listener,
                                     remove_queue_listener)
from nodepool.web.launches import Histogram

__all__ = ["QueueRecorder"]


class QueueRecorder:
    """Queue-time histograms of the requests ``accept`` lets through."""

    def __init__(self, accept: Callable[[QueueEvent], bool] = lambda e: True):
        self._accept = accept
        self._lock = threading.Lock()
        self._histograms: dict[str, Histogram] = {}

    def start(self) -> None:
        add_queue_listener(self.record)

    def stop(self) -> None:
        remove_queue_listener(self.record)

    def record(self, event: QueueEvent) -> None:
        if not self._accept(event):
            return
        with self._lock:
            for label in event.labels:
                histogram = self._histograms.get(label)
                if histogram is None:
                    histogram = self._histograms[label] = Histogram.empty()
                histogram.observe(event.seconds)

    def histograms(self) -> dict[str, Histogram]:
        """label -> a copy of its queue-time histogram."""
        with self._lock:
            return {k: Histogram(list(h.buckets), h.sum, h.count)
                    for k, h in self._histograms.items()}
