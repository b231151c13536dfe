"""ResponseCache: each generated response is reused for ``ttl`` seconds.

cli.md §3 caches every list response for one second per (path, query,
format), so a dashboard polled by many browsers costs one ZooKeeper cache
walk per second.  The generation time is what ``Last-Modified`` reports;
an entry is replaced only after ``ttl`` (>= 1 s), so two generations never
share a ``Last-Modified`` second and ``If-Modified-Since`` can be answered
exactly.

Generation happens under one lock: concurrent requests for an expired key
wait for the one generation instead of each walking ZooKeeper.  A build
that raises caches nothing.  Expired entries are dropped on the next store
so the cache cannot grow with distinct queries.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable

__all__ = ["CachedResponse", "ResponseCache"]


@dataclass(frozen=True)
class CachedResponse:
    body: bytes
    content_type: str
    generated: float            # epoch seconds


class ResponseCache:
    def __init__(self, ttl: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, CachedResponse] = {}

    def get(self, key: Hashable,
            build: Callable[[], tuple[bytes, str]]) -> CachedResponse:
        """The cached response for ``key``, or a fresh one from ``build``."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and now - entry.generated < self.ttl:
                return entry
            body, content_type = build()
            entry = CachedResponse(body, content_type, now)
            self._entries = {k: v for k, v in self._entries.items()
                             if now - v.generated < self.ttl}
            self._entries[key] = entry
            return entry
