"""``/metrics``: the launcher's state in the Prometheus text format.

A custom collector reads a fresh :func:`nodepool.web.state.snapshot` at
each scrape, so nothing is kept in step by the launcher's threads; only
launch results, which happen between scrapes, come from the
:class:`~nodepool.web.launches.LaunchRecorder`.  The registry is the web
app's own ``CollectorRegistry``, never the global default one (several
launchers may share a test process).

Families (all prefixed ``nodepool_``; counters end in ``_total``):

- nodes: ``nodes{state}``, ``provider_nodes{provider,state}``,
  ``label_nodes{label,state}`` (every state of zookeeper.md §6.2, zeros
  included, as the statsd gauges of cli.md §4); ``requests{state}``;
  ``pool_addressable_requests{provider,pool}``;
- launches: ``launches_total{provider,result}`` and the histogram
  ``launch_duration_seconds{provider,result}`` (from the first attempt's
  start, as the statsd timer); the histogram
  ``label_request_queue_seconds{label}`` (from a request's creation to its
  fulfilment, as the statsd timer ``nodepool.label.<label>.request_queue``);
- limits: ``provider_max_servers``, ``tenant_limit{tenant,limit}``,
  ``provider_quota_limit``/``provider_quota_used{provider,resource}``,
  ``pool_quota_limit``/``pool_quota_used{provider,pool,resource}``;
- pools: ``pool_paused``, ``pool_requests_in_progress``;
- records: ``bad_records_total{kind}`` (znode versions quarantined since
  start: not JSON objects, or not fitting their schema) and
  ``quarantined_records{kind}`` (such znodes present now), for every kind
  (``node``, ``request``, ``component``, ``image``, ``offering``);
- capacity: ``offering_unavailable{provider,offering}`` (1 while the cloud's
  capacity error for it is remembered), ``offering_short{provider,offering}``
  (1 while its calls keep being answered partially);
- machinery, per provider: ``provider_active_launches``; rate limiters
  (``rate_limiter_rate`` as configured, ``_share_rate`` this launcher's
  share of it, ``_effective_rate``, ``_delay_seconds``,
  ``_calls_total``, ``_waits_total``, ``_wait_seconds_total``,
  ``_throttled_total``, label ``limiter``); create pools
  (``create_pool_workers``, ``_busy``, ``_queued``, label ``pool``);
  batchers (summary ``batch_size`` with quantiles over the last batches and
  cumulative count/sum, ``batch_retries_total``, label ``batcher``).

Unlimited values are left out, never exported as ``+Inf`` limits.

Threads: ``render`` runs on a web server worker thread per scrape, not
cached, so two scrapes may collect at once; the collector keeps no state
between them (each ``collect`` takes a new snapshot, see ``state.py`` for
what that reads and on which thread it waits).  The launch and queue
recorders are read under their own locks.

Failure story: an exception while collecting (ZooKeeper gone mid-scrape)
propagates to the server, which answers 500 and logs it; the next scrape
starts afresh.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.utils import floatToGoString

from nodepool.stats import NODE_STATES
from nodepool.web.launches import LaunchRecorder
from nodepool.web.queues import QueueRecorder
from nodepool.web.state import LauncherView, ProviderView, snapshot

__all__ = ["LauncherCollector", "make_registry", "render",
           "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_STATES = ("requested", "pending", "fulfilled", "failed")
RECORD_KINDS = ("node", "request", "component", "image", "offering")
QUANTILES = (0.5, 0.9, 1.0)


class LauncherCollector:
    """Collects one launcher's figures at scrape time."""

    def __init__(self, launcher, recorder: LaunchRecorder,
                 queues: QueueRecorder | None = None):
        self.launcher = launcher
        self.recorder = recorder
        self.queues = queues or QueueRecorder(lambda e: False)

    def collect(self) -> Iterator[Metric]:
        view = snapshot(self.launcher)
        yield from _launcher_metrics(view)
        yield from _node_metrics(view)
        yield from _record_metrics(view)
        yield from _launch_metrics(self.recorder)
        yield from _queue_metrics(self.queues)
        yield from _provider_metrics(view.providers)
        yield from _machinery_metrics(view.providers)


def make_registry(launcher, recorder: LaunchRecorder,
                  queues: QueueRecorder | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LauncherCollector(launcher, recorder, queues))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"nodepool_{name}", doc, labels=labels)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"nodepool_{name}", doc, labels=labels)


def _launcher_metrics(view: LauncherView) -> Iterator[Metric]:
    ready = _gauge("launcher_ready", "1 once the first main-loop pass is "
                   "done (/ready answers 200)", [])
    ready.add_metric([], 1 if view.ready else 0)
    connected = _gauge("zookeeper_connected",
                       "1 while the ZooKeeper session is usable", [])
    connected.add_metric([], 1 if view.zk_connected else 0)
    tenants = _gauge("tenant_limit", "Configured tenant resource limits",
                     ["tenant", "limit"])
    for tenant, limits in sorted(view.tenant_limits.items()):
        for name, value in sorted(limits.items()):
            tenants.add_metric([tenant, name], value)
    yield from (ready, connected, tenants)


def _node_metrics(view: LauncherView) -> Iterator[Metric]:
    totals: Counter[str] = Counter()
    by_provider: dict[str, Counter[str]] = {p.name: Counter()
                                            for p in view.providers}
    by_label: dict[str, Counter[str]] = {lb: Counter() for lb in view.labels}
    for node in view.nodes:
        if not node.state:
            continue
        totals[node.state] += 1
        if node.provider:
            by_provider.setdefault(node.provider, Counter())[node.state] += 1
        labels = node.type or []
        for label in [labels] if isinstance(labels, str) else labels:
            by_label.setdefault(label, Counter())[node.state] += 1
    states = list(NODE_STATES) + sorted(set(totals) - set(NODE_STATES))
    nodes = _gauge("nodes", "Nodes by state", ["state"])
    provider = _gauge("provider_nodes", "Nodes by provider and state",
                      ["provider", "state"])
    label = _gauge("label_nodes", "Nodes by label and state",
                   ["label", "state"])
    for state in states:
        nodes.add_metric([state], totals[state])
        for name, counts in sorted(by_provider.items()):
            provider.add_metric([name, state], counts[state])
        for name, counts in sorted(by_label.items()):
            label.add_metric([name, state], counts[state])
    requests = _gauge("requests", "Node requests by state", ["state"])
    counts = Counter(r.state for r in view.requests)
    for state in list(REQUEST_STATES) + sorted(set(counts)
                                               - set(REQUEST_STATES)):
        requests.add_metric([state or "unknown"], counts[state])
    yield from (nodes, provider, label, requests)


def _record_metrics(view: LauncherView) -> Iterator[Metric]:
    bad = _counter("bad_records", "Znode versions quarantined: not a JSON "
                   "object or not fitting their record's schema", ["kind"])
    now = _gauge("quarantined_records", "Quarantined znodes present now",
                 ["kind"])
    kinds = list(RECORD_KINDS) + sorted(
        (set(view.bad_records) | set(view.quarantined)) - set(RECORD_KINDS))
    for kind in kinds:
        bad.add_metric([kind], view.bad_records.get(kind, 0))
        now.add_metric([kind], view.quarantined.get(kind, 0))
    yield from (bad, now)


def _launch_metrics(recorder: LaunchRecorder) -> Iterator[Metric]:
    launches = _counter("launches", "Finished launch attempts by result "
                        "(ready or error.<kind>)", ["provider", "result"])
    latency = HistogramMetricFamily(
        "nodepool_launch_duration_seconds", "Seconds from the start of a "
        "node's first launch attempt to the end of this attempt",
        labels=["provider", "result"])
    for (provider, result), hist in sorted(recorder.histograms().items()):
        launches.add_metric([provider, result], hist.count)
        buckets = [(floatToGoString(bound), count)
                   for bound, count in hist.cumulative()]
        latency.add_metric([provider, result], buckets, hist.sum)
    yield from (launches, latency)


def _queue_metrics(queues: QueueRecorder) -> Iterator[Metric]:
    family = HistogramMetricFamily(
        "nodepool_label_request_queue_seconds", "Seconds from a request's "
        "creation to its fulfilment by this launcher, per label (min-ready "
        "requests left out)", labels=["label"])
    for label, hist in sorted(queues.histograms().items()):
        buckets = [(floatToGoString(bound), count)
                   for bound, count in hist.cumulative()]
        family.add_metric([label], buckets, hist.sum)
    yield family


def _quota(family: GaugeMetricFamily, prefix: list[str],
           values: dict[str, float]) -> None:
    for resource, value in sorted(values.items()):
        family.add_metric(prefix + [resource], value)


def _provider_metrics(providers: list[ProviderView]) -> Iterator[Metric]:
    max_servers = _gauge("provider_max_servers", "Sum of the provider's "
                         "pool max-servers (absent when unlimited)",
                         ["provider"])
    active = _gauge("provider_active_launches", "Launches in progress",
                    ["provider"])
    p_limit = _gauge("provider_quota_limit", "The cloud's quota for the "
                     "provider", ["provider", "resource"])
    p_used = _gauge("provider_quota_used", "Quota used by this "
                    "provider's nodes", ["provider", "resource"])
    q_labels = ["provider", "pool", "resource"]
    pool_limit = _gauge("pool_quota_limit", "Pool limits (max-servers, "
                        "max-cores, ...)", q_labels)
    pool_used = _gauge("pool_quota_used", "Quota used by the pool's nodes",
                       q_labels)
    paused = _gauge("pool_paused", "1 while the pool waits for quota to "
                    "serve a request", ["provider", "pool"])
    handling = _gauge("pool_requests_in_progress", "Requests the pool has "
                      "accepted and not yet fulfilled", ["provider", "pool"])
    addressable = _gauge("pool_addressable_requests", "Open requests whose "
                         "every label the pool supports",
                         ["provider", "pool"])
    offerings = _gauge("offering_unavailable", "1 while the cloud had no "
                       "capacity for the offering (skipped until the record "
                       "expires)", ["provider", "offering"])
    short = _gauge("offering_short", "1 while the cloud keeps starting "
                   "fewer instances than asked for the offering (pools "
                   "serving its labels elsewhere go first)",
                   ["provider", "offering"])
    for p in providers:
        for offering in p.offerings:
            gauge = short if offering.kind == "short" else offerings
            gauge.add_metric([p.name, offering.key], 1)
        if p.max_servers is not None:
            max_servers.add_metric([p.name], p.max_servers)
        active.add_metric([p.name], p.active_launches)
        _quota(p_limit, [p.name], p.quota_limit)
        _quota(p_used, [p.name], p.quota_used)
        for pool in p.pools:
            key = [p.name, pool.name]
            _quota(pool_limit, key, pool.quota_limit)
            _quota(pool_used, key, pool.quota_used)
            paused.add_metric(key, 1 if pool.paused else 0)
            handling.add_metric(key, pool.handling)
            addressable.add_metric(key, pool.addressable)
    yield from (max_servers, active, p_limit, p_used, pool_limit, pool_used,
                paused, handling, addressable, offerings, short)


def _machinery_metrics(providers: list[ProviderView]) -> Iterator[Metric]:
    yield from _limiter_metrics(providers)
    labels = ["provider", "pool"]
    workers = _gauge("create_pool_workers", "Create pool size", labels)
    busy = _gauge("create_pool_busy", "Create calls running", labels)
    queued = _gauge("create_pool_queued", "Create calls waiting for a "
                    "worker", labels)
    for p in providers:
        for pool in p.create_pools:
            workers.add_metric([p.name, pool.name], pool.workers)
            busy.add_metric([p.name, pool.name], pool.busy)
            queued.add_metric([p.name, pool.name], pool.queued)
    yield from (workers, busy, queued)
    yield from _batch_metrics(providers)


def _limiter_metrics(providers: list[ProviderView]) -> Iterator[Metric]:
    labels = ["provider", "limiter"]
    gauges = {
        "rate": _gauge("rate_limiter_rate", "Configured calls per second "
                       "(0: unlimited)", labels),
        "share_rate": _gauge("rate_limiter_share_rate", "Calls per second "
                             "this launcher may use: its share of the "
                             "configured rate among the launchers serving "
                             "the provider", labels),
        "effective_rate": _gauge("rate_limiter_effective_rate", "Calls per "
                                 "second after throttling back-off", labels),
        "delay": _gauge("rate_limiter_delay_seconds", "Seconds until the "
                        "next call could start", labels),
        "tokens": _gauge("rate_limiter_tokens", "Calls that could start now "
                         "without waiting (bucket level)", labels)}
    counters = {
        "calls": _counter("rate_limiter_calls", "Calls admitted", labels),
        "waits": _counter("rate_limiter_waits", "Calls that had to wait",
                          labels),
        "wait_seconds": _counter("rate_limiter_wait_seconds", "Time spent "
                                 "waiting", labels),
        "throttled": _counter("rate_limiter_throttled", "Throttling "
                              "reported by the cloud", labels)}
    for p in providers:
        for limiter in p.limiters:
            for attr, family in {**gauges, **counters}.items():
                family.add_metric([p.name, limiter.name],
                                  getattr(limiter, attr))
    yield from gauges.values()
    yield from counters.values()


def _batch_metrics(providers: list[ProviderView]) -> Iterator[Metric]:
    sizes = Metric("nodepool_batch_size", "Items per batched cloud call "
                   "(quantiles over the last batches)", "summary")
    retries = _counter("batch_retries", "Items resent alone after their "
                       "batch failed", ["provider", "batcher"])
    for p in providers:
        for batcher in p.batchers:
            labels = {"provider": p.name, "batcher": batcher.name}
            recent = sorted(batcher.recent)
            for q in QUANTILES if recent else ():
                index = min(len(recent) - 1, int(q * len(recent)))
                sizes.add_sample("nodepool_batch_size",
                                 {**labels, "quantile": floatToGoString(q)},
                                 recent[index])
            sizes.add_sample("nodepool_batch_size_count", labels,
                             batcher.batches)
            sizes.add_sample("nodepool_batch_size_sum", labels,
                             batcher.items)
            retries.add_metric([p.name, batcher.name], batcher.retries)
    yield from (sizes, retries)
