"""A read-only snapshot of one launcher, shared by ``/metrics`` and the
status page.

``snapshot(launcher)`` reads the ZooKeeper watch caches (nodes, requests)
and the in-memory state of the provider managers, pool workers and their
adapters' machinery (rate limiters, create pools, batchers: what
``Adapter.machinery()`` reports, nothing found behind it), and copies the
figures into plain dataclasses.  It never writes anything and never calls a
cloud except through ``quota_limits()``, which every adapter answers from
its own cache (the pool workers ask it on every pass anyway).

Only figures are copied: names, counts, rates, quota numbers.  No config
value other than names and limits is carried, so nothing secret can reach
an output through here.

Threads: ``snapshot`` runs on a web server worker thread, for a
``/status.json`` (under the response cache's lock: one at a time) or a
``/metrics`` scrape (not cached: several may run at once).  It keeps no
state.  The launcher's threads keep changing what is read; each figure is
read once without the launcher's locks (ints and floats are replaced
atomically), so a snapshot may mix values a few milliseconds apart, which is
fine for monitoring; the objects asked take their own locks where they have
them (the quarantine's counts).  Its node and request reads go to the lazy
watch caches, which may read changed znodes from ZooKeeper and wait for them
on this thread (``watchcache.py``); no launcher thread waits on a snapshot.

Failure story: before ``Launcher.start()`` (no ZooKeeper yet) the
snapshot is empty rather than an error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from nodepool.driver.quota import Quota
from nodepool.launcher.quota import usage
from nodepool.version import __version__
from nodepool.zk.models import Node, NodeRequest

__all__ = ["LimiterView", "CreatePoolView", "BatcherView", "PoolView",
           "OfferingView", "ProviderView", "LauncherView", "snapshot", "finite"]


def finite(value: float | None) -> float | None:
    """None for unlimited (JSON and Prometheus cannot carry inf well)."""
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass
class LimiterView:
    name: str
    rate: float                 # configured calls/s, 0 = unlimited
    share_rate: float           # this launcher's share of it (rate budget)
    effective_rate: float       # after throttling back-off
    burst: float
    delay: float                # seconds until a call could start
    tokens: float               # calls that could start now (inf: unlimited)
    calls: int
    waits: int
    wait_seconds: float
    throttled: int


@dataclass
class CreatePoolView:
    name: str
    workers: int
    busy: int
    queued: int


@dataclass
class BatcherView:
    name: str
    batches: int                # cloud calls made
    items: int                  # items in those calls
    retries: int
    recent: list[int]           # sizes of the most recent batches


@dataclass
class PoolView:
    provider: str
    name: str
    priority: int
    paused: bool
    handling: int               # requests this pool is working on
    max_servers: float | None
    labels: list[str]
    addressable: int            # open requests whose labels it all has
    quota_limit: dict[str, float]
    quota_used: dict[str, float]


@dataclass
class OfferingView:
    key: str                    # the adapter's name of place and size
    until: float                # epoch seconds it is skipped until
    strikes: int                # periods in a row (the TTL doubles)
    ttl: float
    reason: str                 # the cloud's capacity error
    pools: dict[str, list[str]]  # pool -> labels it blocks
    kind: str = "unavailable"   # or "short" (launches, others go first)


@dataclass
class ProviderView:
    name: str
    driver: str
    active_launches: int
    max_servers: float | None
    quota_limit: dict[str, float]
    quota_used: dict[str, float]
    limiters: list[LimiterView] = field(default_factory=list)
    create_pools: list[CreatePoolView] = field(default_factory=list)
    batchers: list[BatcherView] = field(default_factory=list)
    pools: list[PoolView] = field(default_factory=list)
    offerings: list[OfferingView] = field(default_factory=list)


@dataclass
class LauncherView:
    hostname: str
    version: str
    ready: bool
    zk_connected: bool
    now: float                  # epoch seconds of the snapshot
    nodes: list[Node]
    requests: list[NodeRequest]  # processing order (zookeeper.md §3)
    labels: list[str]            # configured plus seen on nodes
    providers: list[ProviderView]
    tenant_limits: dict[str, dict[str, float]]
    # Znode versions quarantined since start / znodes quarantined now, by
    # record kind (node, request, component, image, offering).
    bad_records: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    # request id -> why it waits, per pool (``nodepool.zk.waits``)
    waits: dict[str, list] = field(default_factory=dict)


def snapshot(launcher, now: float | None = None) -> LauncherView:
    now = time.time() if now is None else now
    zk = launcher.zk
    nodes = list(zk.iter_nodes(cached=True)) if zk is not None else []
    requests = zk.iter_requests(cached=True) if zk is not None else []
    config = launcher.config
    labels = set(config.labels) if config is not None else set()
    for node in nodes:
        labels.update(_labels_of(node))
    workers = list(launcher.pool_workers().values())
    managers = sorted(launcher.provider_managers().items())
    providers = [_provider_view(manager, nodes, requests, workers)
                 for _, manager in managers]
    tenants = {}
    if config is not None:
        tenants = {tenant: {k: v for k, v in limits.items()
                            if finite(v) is not None}
                   for tenant, limits in config.tenant_resource_limits.items()}
    bad_records: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    if zk is not None:
        bad_records = zk.quarantine.counts()
        quarantined = zk.quarantine.by_kind(zk.quarantined())
    return LauncherView(
        hostname=launcher.hostname, version=__version__,
        ready=launcher.ready.is_set(),
        zk_connected=zk is not None and launcher.zk_ready(), now=now,
        nodes=nodes, requests=requests, labels=sorted(labels),
        providers=providers, tenant_limits=tenants,
        bad_records=bad_records, quarantined=quarantined,
        waits=zk.waits_by_request(cached=True, requests=requests)
        if zk is not None else {})


def _labels_of(node: Node) -> list[str]:
    labels = node.type or []
    return [labels] if isinstance(labels, str) else list(labels)


def _provider_view(manager, nodes: list[Node], requests: list[NodeRequest],
                   workers: list) -> ProviderView:
    provider = manager.provider
    mine = [n for n in nodes if n.provider == provider.name]
    used = usage(mine, manager.node_cost)
    try:
        limits = manager.provider_limits()
    except Exception:       # an adapter's quota cache may be cold and failing
        limits = Quota()
    view = ProviderView(
        name=provider.name, driver=provider.driver,
        active_launches=manager.active_launches,
        max_servers=finite(sum(p.max_servers
                               for p in provider.pools.values())),
        quota_limit=limits.finite(), quota_used=used.finite())
    _add_machinery(view, manager.adapter)
    try:
        current = manager.offerings.current()
    except Exception:       # no ZooKeeper cache yet
        current = []
    view.offerings = sorted(
        (OfferingView(o.key, o.until, o.strikes, o.ttl, o.reason,
                      dict(o.pools), o.kind) for o in current),
        key=lambda o: o.key)
    for worker in workers:
        if worker.manager is manager:
            view.pools.append(_pool_view(worker, mine, requests))
    view.pools.sort(key=lambda p: p.name)
    return view


def _pool_view(worker, nodes: list[Node],
               requests: list[NodeRequest]) -> PoolView:
    pool = worker.pool
    labels = set(pool.labels)
    used = usage((n for n in nodes if n.pool == pool.name),
                 lambda n: worker.manager.node_cost(n, pool))
    addressable = sum(1 for r in requests if r.state == "requested"
                      and set(r.node_types) <= labels)
    return PoolView(
        provider=worker.provider.name, name=pool.name,
        priority=pool.priority, paused=worker.paused,
        handling=len(worker.handlers),
        max_servers=finite(pool.max_servers), labels=sorted(labels),
        addressable=addressable, quota_limit=worker.quota.limits.finite(),
        quota_used=used.finite())


def _add_machinery(view: ProviderView, adapter) -> None:
    machinery = adapter.machinery()
    for limiter in machinery.limiters:
        s = limiter.stats
        view.limiters.append(LimiterView(
            limiter.name, limiter.configured_rate, limiter.rate,
            limiter.effective_rate,
            limiter.burst, limiter.delay_for(), limiter.tokens(), s.calls,
            s.waits, s.wait_seconds, s.throttled))
    for pool in machinery.create_pools:
        view.create_pools.append(CreatePoolView(
            pool.name, pool.workers, pool.busy, pool.queued))
    for batcher in machinery.batchers:
        s = batcher.stats
        view.batchers.append(BatcherView(
            batcher.name, s.batches, s.items, s.retries, list(s.sizes)))
    view.limiters.sort(key=lambda x: x.name)
    view.create_pools.sort(key=lambda x: x.name)
    view.batchers.sort(key=lambda x: x.name)
