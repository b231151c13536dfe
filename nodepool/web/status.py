"""``/status.json``: what the live status page shows, as plain JSON.

Built from a :func:`nodepool.web.state.snapshot` plus the recent launch
errors.  Every object is written field by field from a fixed list (the
tests check the exact key sets), never by dumping a record or a config
object, so no new field of a node, request or provider can leak into the
page unnoticed; request ``requestor_data`` and node ``user_data`` /
``driver_data`` are deliberately left out.

Every string in the document, keys included, is passed through
:func:`nodepool.escaping.escape_tree`: the page shows control characters
escaped, like the CLI's tables (the page itself only ever sets
``textContent``, so markup is shown as text too).

Requests come in processing order (zookeeper.md §3), at most
``MAX_REQUESTS`` of them (``requests_total`` tells how many there are),
each with ``waits``: why it waits, one entry per pool that recorded a
reason (``nodepool.zk.waits``: kind, text, since, seconds waiting, and
which provider, pool and host).
"""

from __future__ import annotations

from collections import Counter

from nodepool.escaping import escape_tree
from nodepool.stats import NODE_STATES
from nodepool.web.launches import LaunchRecorder
from nodepool.web.state import (BatcherView, LauncherView, PoolView,
                                ProviderView)

__all__ = ["status_document", "MAX_REQUESTS"]

MAX_REQUESTS = 200


def status_document(view: LauncherView, recorder: LaunchRecorder) -> dict:
    launches = _launch_counts(recorder)
    return escape_tree({
        "launcher": {"hostname": view.hostname, "version": view.version,
                     "ready": view.ready,
                     "zookeeper_connected": view.zk_connected},
        "generated": view.now,
        "providers": [_provider(p, launches.get(p.name, {}))
                      for p in view.providers],
        "nodes": _nodes(view),
        "requests": [_request(r, view.now, view.waits.get(r.id, []))
                     for r in view.requests[:MAX_REQUESTS]],
        "requests_total": len(view.requests),
        "errors": [{"time": e.time, "provider": e.provider,
                    "node": e.node_id, "result": e.result,
                    "message": e.message}
                   for e in recorder.recent_errors()],
    })


def _launch_counts(recorder: LaunchRecorder) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for (provider, result), hist in recorder.histograms().items():
        entry = out.setdefault(provider, {})
        entry[result] = {"count": hist.count,
                         "mean_seconds": round(hist.sum / hist.count, 3)
                         if hist.count else None}
    return out


def _provider(p: ProviderView, launches: dict) -> dict:
    return {
        "name": p.name, "driver": p.driver,
        "active_launches": p.active_launches,
        "max_servers": p.max_servers,
        "quota": {"limit": p.quota_limit, "used": p.quota_used},
        "launches": launches,
        "rate_limiters": [
            {"name": x.name, "rate": x.rate,
             "share_rate": round(x.share_rate, 3),
             "effective_rate": round(x.effective_rate, 3),
             "delay": round(x.delay, 3),
             # null when unlimited: JSON has no infinity
             "tokens": (round(x.tokens, 3) if x.tokens != float("inf")
                        else None),
             "calls": x.calls, "waits": x.waits,
             "wait_seconds": round(x.wait_seconds, 3),
             "throttled": x.throttled} for x in p.limiters],
        "create_pools": [{"name": x.name, "workers": x.workers,
                          "busy": x.busy, "queued": x.queued}
                         for x in p.create_pools],
        "batchers": [_batcher(x) for x in p.batchers],
        "pools": [_pool(x) for x in p.pools],
        # Offerings the cloud had no capacity for, skipped until "until".
        "offerings_unavailable": [_offering(o) for o in p.offerings
                                  if o.kind == "unavailable"],
        # Offerings answered partially, again and again: they launch, but
        # pools serving the same labels elsewhere go first until "until".
        "offerings_short": [_offering(o) for o in p.offerings
                            if o.kind == "short"],
    }


def _offering(o) -> dict:
    return {"offering": o.key, "until": o.until, "strikes": o.strikes,
            "ttl": o.ttl, "reason": o.reason, "pools": o.pools}


def _batcher(b: BatcherView) -> dict:
    return {"name": b.name, "batches": b.batches, "items": b.items,
            "retries": b.retries, "recent_sizes": b.recent[-20:]}


def _pool(pool: PoolView) -> dict:
    return {"name": pool.name, "priority": pool.priority,
            "paused": pool.paused, "requests_in_progress": pool.handling,
            "addressable_requests": pool.addressable,
            "max_servers": pool.max_servers, "labels": pool.labels,
            "quota": {"limit": pool.quota_limit, "used": pool.quota_used}}


def _nodes(view: LauncherView) -> dict:
    by_state: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = {}
    by_provider: dict[str, Counter[str]] = {}
    for node in view.nodes:
        state = node.state or "unknown"
        by_state[state] += 1
        labels = node.type or []
        for label in [labels] if isinstance(labels, str) else labels:
            by_label.setdefault(label, Counter())[state] += 1
        by_provider.setdefault(node.provider or "", Counter())[state] += 1
    order = [s for s in NODE_STATES if s in by_state] + sorted(
        set(by_state) - set(NODE_STATES))
    return {"total": len(view.nodes), "states": order,
            "by_state": dict(by_state),
            "by_label": {k: dict(v) for k, v in sorted(by_label.items())},
            "by_provider": {k: dict(v)
                            for k, v in sorted(by_provider.items())}}


def _request(r, now: float, waits: list) -> dict:
    created = r.created_time or r.state_time
    return {"id": r.id, "priority": r.priority,
            "relative_priority": r.relative_priority, "state": r.state,
            "requestor": r.requestor, "tenant": r.tenant_name,
            "node_types": list(r.node_types), "nodes": list(r.nodes),
            "declined_by": list(r.declined_by),
            "age": None if created is None else round(now - created, 1),
            "waits": [_wait(w, now) for w in waits]}


def _wait(w, now: float) -> dict:
    return {"kind": w.kind, "text": w.text, "since": w.since,
            "waiting": round(max(0.0, now - w.since), 1),
            "provider": w.provider, "pool": w.pool, "hostname": w.hostname}
