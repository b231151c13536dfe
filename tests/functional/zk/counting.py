"""Counting what a ``ZooKeeper`` facade's client sends, for tests that
measure reads (the requests still go to the real server)."""

from __future__ import annotations

import collections


def count_requests(api) -> collections.Counter:
    """Count (request type, path) of what ``api``'s client sends from now
    on (the requests still go to the server)."""
    sent: collections.Counter = collections.Counter()
    kazoo = api.kazoo
    original = kazoo._call

    def counting(request, async_object):
        path = kazoo.unchroot(getattr(request, "path", "") or "")
        sent[(type(request).__name__, path)] += 1
        return original(request, async_object)

    kazoo._call = counting
    return sent
