"""Quota of one pool: its limits, its usage, reservations and the recount
clock, in one place.

``PoolQuota`` answers one question for the pool worker and its request
handlers: *can this node set start now -- and if not, which limit stops it
and how much is free?*  The answer is a ``Verdict``, which names the limit
(``pool max-cores``, ``provider quota``, ``tenant-resource-limits``...),
the resource and what is left of it; logs and the pool's paused reason
print it.

What it owns (and nobody else decides):
- the limits: the pool's ``max-servers`` / ``max-cores`` / ``max-ram`` /
  ``max-resources``, the cloud's quota (``provider_limits``, as the adapter
  reports it now -- it may shrink or grow between calls) unless the pool
  sets ``ignore-provider-quota``, and a tenant's
  ``tenant-resource-limits`` (``tenant_verdict``);
- the usage: the pool's nodes and the provider's (plus the instances the
  provider does not manage, counted by ``provider_used``), summed at most
  every ``USAGE_TTL`` seconds (an O(nodes) walk) -- every
  ``FRESH_INTERVAL`` while node znodes appear (``births``: another
  launcher's nodes count as soon as its pool's do), but only once the
  nodes that appeared could matter (at the most a node of the pool costs
  each, they would not leave room for what is asked) -- plus nodes we
  created that the node cache does not show yet (``RECENT_TTL``);
- reservations: ``reserve`` checks and claims atomically, so racing
  handlers never both take the last slot; ``commit`` turns a reservation
  into a recent node, ``release`` gives it back.  Between recounts the
  usage is adjusted exactly by reservations; nodes freed meanwhile are seen
  at the next recount (usage is overestimated for at most ``USAGE_TTL``,
  never underestimated by our own launches);
- the rule "at quota, delete the oldest unused ready node of the pool, not
  more than once per ``RECLAIM_INTERVAL``" (``reclaim_candidates``); the
  deletion itself (locks, writes) is the pool worker's.

What it needs is passed in as plain callables, so it is tested without
ZooKeeper or a cloud: ``nodes()`` (the provider's cached node records),
``births()`` (a count of node znodes seen appearing, None if unknown),
``label_cost(label)`` and ``node_cost(node)`` (the adapter's costs),
``provider_limits()`` and ``provider_used(nodes)`` (the cloud's quota and
what is used of it), and a monotonic ``clock``.  Why callables and not the
provider manager: quota is arithmetic over what those return, and a test
that can hand it numbers can check every limit exactly.

Threads: one ``PoolQuota`` per pool worker; its thread and the worker's
I/O threads call it at once.  Every method takes ``_lock`` (re-entrant),
so a check and the claim that follows it are one step.  The callables are
called under that lock and must not call back into it.

Failure story: it writes nothing and calls the cloud only through
``provider_limits``/``provider_used``; if those raise, the exception
reaches the caller (the handler's action fails and is retried or the
request declined, as for any error there), and no reservation is left
behind.  A reservation whose launch never started is released by the
handler (``release``); a committed node that never reaches the cache
stops counting after ``RECENT_TTL``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from nodepool.driver.quota import Quota
from nodepool.zk.models import Node, NodeState

# A node we created is counted against quota from here until the node
# cache shows it (the cache lags our own writes by a few milliseconds).
RECENT_TTL = 60.0
# Quota usage is summed over the provider's nodes at most this often (an
# O(nodes) walk: per pass it was half the launcher's CPU under a burst).
USAGE_TTL = 0.5
# ... but again once this old when a node znode appeared since (any
# launcher's: ``births``), so that the nodes a peer launcher created are
# counted within a round trip or two instead of up to ``USAGE_TTL`` later:
# several launchers filling one pool's last slots would otherwise each
# fill them (cost: one walk per this interval while nodes appear and
# the pool is close enough to a limit for them to matter).
FRESH_INTERVAL = 0.05
RECLAIM_INTERVAL = 300.0  # spec: not while a reclaimed node is < 5 min old

#: names of the pool limits, per resource key, as the config spells them
POOL_LIMIT_NAMES = {"instances": "max-servers", "cores": "max-cores",
                    "ram": "max-ram"}


@dataclass(frozen=True)
class Verdict:
    """Whether a node set may start now; if not, what stops it.

    ``limit`` names the limit ("pool max-cores", "provider quota",
    "tenant-resource-limits of t1"), ``resource`` the key, ``free`` what is
    left of it and ``need`` what the node set asks.  ``reservation`` is
    the token of a successful ``PoolQuota.reserve``.
    """

    fits: bool
    limit: str | None = None
    resource: str | None = None
    free: float | None = None
    need: float | None = None
    reservation: object | None = None

    def __bool__(self) -> bool:
        return self.fits

    def describe(self) -> str:
        if self.fits:
            return "within quota"
        return (f"{self.limit} reached: {self.resource} needs "
                f"{_num(self.need)}, {_num(self.free)} free")


FITS = Verdict(True)


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def verdict(need: Quota, limits: Quota, used: Quota, name: str,
            names: Mapping[str, str] | None = None) -> Verdict:
    """``need`` on top of ``used`` against ``limits``: the first key that
    does not fit (sorted, so a verdict is stable), or ``FITS``.

    The verdict's limit is ``name``, followed (unless ``names`` is None) by
    the key's name in ``names`` or the key itself."""
    for key in sorted(need.values):
        limit = limits.values.get(key, math.inf)
        want = need.values[key]
        free = limit - used.values.get(key, 0)
        if want > free:
            label = name if names is None else \
                f"{name} {names.get(key, key)}"
            return Verdict(False, label, key, max(free, 0), want)
    return FITS


def pool_limits(pool) -> Quota:
    """The pool's own limits (max-servers, max-cores, max-ram and
    max-resources); unlimited keys are left out."""
    values = {"instances": pool.max_servers, "cores": pool.max_cores,
              "ram": pool.max_ram}
    values.update(pool.max_resources or {})
    return Quota({k: v for k, v in values.items() if v != math.inf})


def bound_cost(costs: Iterable[Quota]) -> Quota:
    """Per resource the most any of ``costs`` asks, instances at least 1:
    what a node not read (or not yet counted) is counted at."""
    out: dict[str, float] = {"instances": 1}
    for cost in costs:
        for key, value in cost.values.items():
            out[key] = max(out.get(key, 0), value)
    return Quota(out)


def usage(nodes: Iterable[Node], node_cost: Callable[[Node], Quota]
          ) -> Quota:
    """What ``nodes`` cost together (the web view sums with this too)."""
    return Quota.total(node_cost(n) for n in nodes)


def tenant_verdict(limits: Mapping[str, Mapping[str, float]], tenant,
                   need: Quota, nodes: Iterable[Node]) -> Verdict:
    """``tenant-resource-limits``: does ``need`` fit the tenant's limits on
    top of the ``resources`` of every node (any provider) carrying its
    name (zookeeper.md §10)?  Requests without a tenant, or of a tenant
    without limits, always fit."""
    tenant_limits = limits.get(tenant or "")
    if not tenant or not tenant_limits:
        return FITS
    used = Quota.total(Quota.from_resources(n.resources) for n in nodes
                       if n.tenant_name == tenant)
    return verdict(need, Quota(dict(tenant_limits)), used,
                   f"tenant-resource-limits of {tenant}")


def reclaim_candidates(nodes: Iterable[Node], pool_name: str) -> list[Node]:
    """The pool's unallocated READY nodes, oldest first: what may be
    deleted to make room at quota."""
    return sorted((n for n in nodes if n.pool == pool_name
                   and n.state == NodeState.READY and not n.allocated_to),
                  key=lambda n: n.state_time or 0)


class PoolQuota:
    """See the module docstring.  Usage::

        quota = PoolQuota(pool, "aws", nodes=cache, label_cost=cost,
                          node_cost=node_cost, provider_limits=limits,
                          provider_used=used)
        verdict = quota.reserve(quota.cost([label]))
        if not verdict:
            log.info("waiting: %s", verdict.describe())
        else:
            ...   # create the node, then
            quota.commit(verdict.reservation, node)   # or release(...)
    """

    usage_ttl = USAGE_TTL
    fresh_interval = FRESH_INTERVAL
    recent_ttl = RECENT_TTL
    reclaim_interval = RECLAIM_INTERVAL

    def __init__(self, pool, provider_name: str, *,
                 nodes: Callable[[], list[Node]],
                 label_cost: Callable[[object], Quota],
                 node_cost: Callable[[Node], Quota],
                 provider_limits: Callable[[], Quota],
                 provider_used: Callable[[list[Node]], Quota],
                 births: Callable[[], int | None] = lambda: None,
                 bound: Callable[[], Quota] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.pool = pool
        self.provider_name = provider_name
        self._nodes = nodes
        self._label_cost = label_cost
        self._node_cost = node_cost
        self._provider_limits = provider_limits
        self._provider_used_by = provider_used
        self._births = births
        self.clock = clock
        self.limits = pool_limits(pool)
        self.ignore_provider_quota = pool.ignore_provider_quota
        self._lock = threading.RLock()
        # "pool"/"provider" -> [counted at, usage + our reservations,
        #                       births then]
        self._counted: dict[str, list] = {}
        self._reservations: dict[object, Quota] = {}
        self._recent: dict[str, tuple[float, Node]] = {}
        self._last_reclaim: float | None = None
        self._bound_of = bound
        self._bound_cost: Quota | None = None

    # -- costs ---------------------------------------------------------------
    def label_cost(self, label) -> Quota:
        return self._label_cost(label)

    def cost(self, labels: Iterable) -> Quota:
        """What one node of each of ``labels`` (label objects) costs."""
        return Quota.total(self._label_cost(label) for label in labels)

    # -- usage ---------------------------------------------------------------
    def provider_nodes(self) -> list[Node]:
        """Our provider's nodes: the cache plus those it does not show
        yet (created by us less than ``RECENT_TTL`` ago)."""
        with self._lock:
            nodes = [n for n in self._nodes()
                     if n.provider == self.provider_name]
            cached = {n.id for n in nodes}
            now = self.clock()
            self._recent = {i: (t, n) for i, (t, n) in self._recent.items()
                            if i not in cached and now - t < self.recent_ttl}
            return nodes + [n for _, n in self._recent.values()]

    def _recounted(self, key: str, count: Callable[[], Quota],
                   fresh: bool = True) -> tuple[Quota, int]:
        """``count()`` plus our reservations, and how many node znodes
        appeared since it was counted (0 when unknown).  Recounted at most
        every ``usage_ttl`` -- or, ``fresh``, every ``fresh_interval``
        when node znodes appeared since the last count (ours or a peer's:
        the births do not tell whose); in between, reserve/release adjust
        it exactly."""
        now = self.clock()
        born = self._births()
        entry = self._counted.get(key)
        if entry is None or now - entry[0] > self.usage_ttl or (
                fresh and born != entry[2]
                and now - entry[0] >= self.fresh_interval):
            entry = self._counted[key] = [
                now, count() + Quota.total(self._reservations.values()),
                born]
        unseen = 0 if born is None or entry[2] is None \
            else max(0, born - entry[2])
        return entry[1], unseen

    def _pool_used(self, fresh: bool = True) -> tuple[Quota, int]:
        return self._recounted("pool", lambda: usage(
            (n for n in self.provider_nodes()
             if n.pool == self.pool.name), self._node_cost), fresh)

    def _provider_used(self, fresh: bool = True) -> tuple[Quota, int]:
        return self._recounted("provider", lambda: self._provider_used_by(
            self.provider_nodes()), fresh)

    def pool_used(self) -> Quota:
        with self._lock:
            return self._pool_used()[0]

    def provider_used(self) -> Quota:
        with self._lock:
            return self._provider_used()[0]

    def _bound(self) -> Quota:
        """The most one node costs (per resource): what a node znode that
        appeared since the last count may add -- ``bound()`` (the pool
        worker's: any label of the provider, so the provider's quota is
        judged with its other pools' labels too), else any label of this
        pool."""
        if self._bound_of is not None:
            return self._bound_of()
        if self._bound_cost is None:
            self._bound_cost = bound_cost(
                self._label_cost(label)
                for label in (self.pool.labels or {}).values())
        return self._bound_cost

    # -- verdicts ------------------------------------------------------------
    def check(self, need: Quota) -> Verdict:
        """Does ``need`` fit the pool's and the provider's limits on top of
        the current usage and reservations?

        Node znodes that appeared since the last count are recounted
        (``fresh_interval``) only when they could matter: while ``need``
        fits even if each of them cost the most a node of this pool
        costs, the count stands -- so a launcher far from its limits
        walks its nodes every ``usage_ttl``, not at every node born."""
        with self._lock:
            found = self._verdict(need, fresh=False)
            if found:
                return found
            return self._verdict(need, fresh=True)

    def _verdict(self, need: Quota, fresh: bool) -> Verdict:
        """``fresh``: recount if nodes appeared, and judge ``need`` on the
        count; else judge ``need`` plus the most the nodes that appeared
        since the count could cost."""
        used, unseen = self._pool_used(fresh)
        found = verdict(need + self._unseen(unseen, fresh), self.limits,
                        used, "pool", POOL_LIMIT_NAMES)
        if not found or self.ignore_provider_quota:
            return found
        limits = self._provider_limits()
        if not limits.values:
            return FITS
        used, unseen = self._provider_used(fresh)
        return verdict(need + self._unseen(unseen, fresh), limits, used,
                       "provider quota", {})

    def _unseen(self, births: int, fresh: bool) -> Quota:
        if fresh or not births:
            return Quota()
        return Quota({k: v * births for k, v in self._bound().values.items()})

    def never_fits(self, need: Quota) -> Verdict:
        """Would ``need`` exceed the limits even with nothing in use (the
        request is declined rather than waiting)?"""
        found = verdict(need, self.limits, Quota(), "pool",
                        POOL_LIMIT_NAMES)
        if not found or self.ignore_provider_quota:
            return found
        return verdict(need, self._provider_limits(), Quota(),
                       "provider quota", {})

    # -- reservations --------------------------------------------------------
    def reserve(self, need: Quota) -> Verdict:
        """Atomically check room for ``need`` and claim it; the verdict's
        ``reservation`` is the token for ``commit``/``release``."""
        with self._lock:
            found = self.check(need)
            if not found:
                return found
            token = object()
            self._reservations[token] = need
            self._adjust(need, +1)
            return Verdict(True, reservation=token)

    def commit(self, token, node: Node) -> None:
        """The reserved node exists: count it as recent until the cache
        shows it."""
        with self._lock:
            self._reservations.pop(token, None)
            self._recent[node.id] = (self.clock(), node)

    def release(self, token) -> None:
        """The reserved node was never created: give the room back."""
        with self._lock:
            need = self._reservations.pop(token, None)
            if need is not None:
                self._adjust(need, -1)

    def _adjust(self, change: Quota, sign: int) -> None:
        for entry in self._counted.values():
            entry[1] = entry[1] + change if sign > 0 else entry[1] - change

    # -- reclaiming ----------------------------------------------------------
    def reclaim_candidates(self) -> list[Node]:
        """At quota: the pool's unused ready nodes, oldest first -- or none
        while the last reclaim is less than ``reclaim_interval`` ago."""
        with self._lock:
            if self._last_reclaim is not None and \
                    self.clock() - self._last_reclaim < self.reclaim_interval:
                return []
            return reclaim_candidates(self.provider_nodes(), self.pool.name)

    def reclaimed(self) -> None:
        """One node was deleted to make room: start the interval."""
        with self._lock:
            self._last_reclaim = self.clock()
