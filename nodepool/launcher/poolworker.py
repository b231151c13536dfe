"""One worker thread per provider pool: picks requests and serves them.

Thread: ``PoolWorker.<provider>-<pool>``.  It is the only thread that
creates, polls and ends this pool's ``RequestHandler`` objects, and the only
writer of this pool's component znode.

Routing follows zookeeper.md §8.2: for each request in priority order it
decides skip / defer / decline / accept using the registered pool
components (cached for a second), takes the request lock without blocking,
re-reads the request, and re-checks before acting.

Failure story: an exception while handling a request declines it; an
exception in the loop itself is logged and the loop continues after a
short pause.  While the ZooKeeper session is suspended or lost the worker
does nothing (no accept, decline or write) and resumes on reconnection; its
component is re-registered by the ZooKeeper layer after a new session.
``stop()`` releases every handler's nodes, resets their requests to
``requested`` and unregisters the component.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import uuid

from nodepool.driver.quota import Quota
from nodepool.launcher.handler import RequestHandler
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState, PoolComponent, RequestState

RECLAIM_INTERVAL = 300.0  # spec: not while a reclaimed node is < 5 min old
# Changes arrive in bursts (every node and request write wakes us); a short
# floor between passes lets one pass serve a whole burst.
MIN_PASS_INTERVAL = 0.05
# Per-pass gauges (cli.md §4) at most this often: a busy worker passes
# up to 20 times a second, and a repeated gauge carries nothing new.
STATS_INTERVAL = 1.0


def pool_limits(pool) -> Quota:
    values = {"instances": pool.max_servers, "cores": pool.max_cores,
              "ram": pool.max_ram}
    values.update(pool.max_resources or {})
    return Quota({k: v for k, v in values.items() if v != math.inf})


class PoolWorker:
    def __init__(self, launcher, provider, pool, manager):
        self.launcher = launcher
        self.zk = launcher.zk
        self.provider = provider
        self.pool = pool
        self.manager = manager
        self.name = f"{provider.name}-{pool.name}"
        self.id = (f"{socket.getfqdn()}-PoolWorker.{self.name}-"
                   f"{uuid.uuid4().hex}")
        self.log = logging.getLogger(f"nodepool.PoolWorker.{self.name}")
        self.handlers: list[RequestHandler] = []
        self.component: PoolComponent | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nodes: list[Node] | None = None
        self._spares: dict[str, list[Node]] | None = None
        self._pool_usage: Quota | None = None
        self._last_reclaim = 0.0
        self._last_stats = 0.0
        self._launches_this_pass: list[Node] = []

    # -- lifecycle ----------------------------------------------------------
    @property
    def priority(self) -> int:
        return self.pool.priority

    @property
    def supported_labels(self) -> set[str]:
        return set(self.pool.labels)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"pool worker {self.name} already started")
        self._thread = threading.Thread(target=self._run,
                                        name=f"PoolWorker.{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    @property
    def paused(self) -> bool:
        return any(h.paused for h in self.handlers)

    # -- the loop -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.launcher.zk_ready():
                    self._wake.wait(0.5)
                    continue
                try:
                    self._pass()
                except Exception:
                    self.log.exception("Error in pool worker loop")
                    self._stop.wait(1.0)
                started = time.monotonic()
                busy = bool(self.handlers)
                self._wake.wait(0.05 if busy else 1.0)
                self._wake.clear()
                rest = MIN_PASS_INTERVAL - (time.monotonic() - started)
                if rest > 0:
                    self._stop.wait(rest)
        finally:
            self._shutdown()

    def _pass(self) -> None:
        self._nodes = None
        self._spares = None
        self._pool_usage = None
        self._launches_this_pass = []
        self._publish_component()
        self._emit_stats()
        self._poll_handlers()
        self._assign_requests()

    def _emit_stats(self) -> None:
        """``max_servers`` of our provider and every tenant's limits."""
        now = time.monotonic()
        if now - self._last_stats < STATS_INTERVAL:
            return
        self._last_stats = now
        stats = self.launcher.stats
        # An unlimited pool makes the sum infinite, which is not sent.
        stats.max_servers(self.provider.name, sum(
            p.max_servers for p in self.provider.pools.values()))
        limits = self.launcher.config.tenant_resource_limits
        for tenant, values in limits.items():
            stats.tenant_limits(tenant, values)

    def _shutdown(self) -> None:
        for handler in self.handlers:
            try:
                handler.release()
            except Exception:
                self.log.exception("Could not release request %s",
                                   handler.request.id)
        self.handlers = []
        if self.component is not None:
            try:
                self.zk.unregister_component(self.component)
            except Exception:
                self.log.exception("Could not unregister pool component")
            self.component = None

    def _publish_component(self) -> None:
        fields = {"name": self.pool.name, "provider_name": self.provider.name,
                  "supported_labels": sorted(self.supported_labels),
                  "priority": self.priority, "paused": self.paused}
        if self.component is None:
            self.component = PoolComponent()
            self.component.id = self.id
            self.component.state = "running"
            for k, v in fields.items():
                setattr(self.component, k, v)
            self.zk.register_pool(self.component)
            return
        if any(getattr(self.component, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(self.component, k, v)
            self.zk.update_component(self.component)

    def _poll_handlers(self) -> None:
        paused = [h for h in self.handlers if h.paused]
        for handler in sorted(paused, key=lambda h: h.request.sort_key()):
            self._guard(handler, handler.fill)
        for handler in list(self.handlers):
            self._guard(handler, handler.poll)
        self.handlers = [h for h in self.handlers if not h.done]

    def _guard(self, handler: RequestHandler, fn) -> None:
        if handler.done:
            return
        try:
            fn()
        except Exception:
            handler.log.exception("Error handling request %s",
                                  handler.request.id)
            if not handler.done:
                handler.decline("an error occurred while handling it")

    # -- request routing (zookeeper.md §8.2) ---------------------------------
    def _assign_requests(self) -> None:
        if self.provider.max_concurrency == 0:
            return
        requests = self.zk.iter_requests(cached=True)
        components = self.launcher.pool_components()
        handled = {h.request.id for h in self.handlers}
        mine = self.supported_labels
        # Requests we can fully serve come before those we would decline.
        requests.sort(key=lambda r: (not set(r.node_types) <= mine,
                                     r.sort_key()))
        for request in requests:
            if self._stop.is_set():
                return
            if (request.state != RequestState.REQUESTED
                    or self.id in request.declined_by
                    or request.id in handled):
                continue
            decision = self._route(request, components)
            if decision is None:
                continue
            self._take(request, decision)

    def _route(self, request, components) -> str | None:
        """None to skip, "accept", or a decline reason."""
        labels = set(request.node_types)
        candidates = [c for c in components
                      if labels <= set(c.supported_labels or [])
                      and c.id not in request.declined_by]
        if (request.provider and request.provider != self.provider.name
                and any(c.provider_name == request.provider
                        for c in candidates)):
            return None
        if any(c.priority < self.priority and not c.paused
               and c.id != self.id for c in candidates):
            return None
        if not labels <= self.supported_labels and candidates:
            return None
        reason = self.decline_reason(request)
        if reason is not None:
            return reason
        if self.paused or not self._can_take_now(request):
            return None
        return "accept"

    def _can_take_now(self, request) -> bool:
        if not self.manager.has_capacity_now(self, request):
            return False
        if not self.launcher.tenant_allows(request, self):
            return False
        limit = self.provider.max_concurrency
        if limit > 0 and self.manager.active_launches + len(
                request.node_types) > limit and self.manager.active_launches:
            return False
        return True

    def decline_reason(self, request) -> str | None:
        if self.pool.max_servers <= 0:
            return "pool is disabled by max_servers"
        missing = [label for label in request.node_types
                   if label not in self.pool.labels
                   or not self.manager.label_usable(self.pool.labels[label])]
        if missing:
            return f"node type(s) [{','.join(missing)}] not available"
        if not all(self.image_available(self.pool.labels[label])
                   for label in request.node_types):
            return "images are not available"
        need = Quota.total(self.label_cost(self.pool.labels[label])
                           for label in request.node_types)
        if need.exceeds(pool_limits(self.pool)) or (
                not self._ignore_provider_quota()
                and need.exceeds(self.manager.provider_limits())):
            return "it would exceed quota"
        return None

    def _take(self, request, decision: str) -> None:
        try:
            self.zk.lock_request(request, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        try:
            if (request.state != RequestState.REQUESTED
                    or self.id in request.declined_by):
                self.zk.unlock_request(request)
                return
        except Exception:
            self.zk.unlock_request(request)
            raise
        if decision != "accept":
            try:
                self.decline(request, decision)
            finally:
                self.zk.unlock_request(request)
            return
        handler = RequestHandler(self, request)
        self.handlers.append(handler)
        self._guard(handler, handler.accept)

    def decline(self, request, reason: str) -> None:
        """Append our id to ``declined_by``; fail once every pool did."""
        if self.id not in request.declined_by:
            request.declined_by.append(self.id)
        registered = {c.id for c in self.launcher.pool_components(
            fresh=True)}
        registered.add(self.id)
        if registered <= set(request.declined_by):
            request.set_state(RequestState.FAILED)
        else:
            request.set_state(RequestState.REQUESTED)
        self.log.info("Declined request %s (%s): %s", request.id,
                      request.state, reason)
        self.zk.store_request(request)

    # -- capacity -----------------------------------------------------------
    def nodes_cached(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = list(self.zk.iter_nodes(cached=True))
        return self._nodes

    def spares(self, label: str) -> list[Node]:
        """READY unallocated nodes of this pool with ``label`` (this pass)."""
        if self._spares is None:
            self._spares = {}
            for node in self.nodes_cached():
                if (node.state == NodeState.READY and not node.allocated_to
                        and node.provider == self.provider.name
                        and node.pool == self.pool.name):
                    for name in node.type or []:
                        self._spares.setdefault(name, []).append(node)
        return self._spares.get(label, [])

    def count_launch(self, node: Node) -> None:
        self._launches_this_pass.append(node)
        if self._pool_usage is not None:
            self._pool_usage = self._pool_usage + self.manager.node_cost(
                node, self.pool)

    def _pool_nodes(self) -> list[Node]:
        seen = {n.id for n in self._launches_this_pass}
        nodes = [n for n in self.nodes_cached()
                 if n.provider == self.provider.name
                 and n.pool == self.pool.name and n.id not in seen]
        return nodes + self._launches_this_pass

    def _ignore_provider_quota(self) -> bool:
        return bool(self.pool.settings.get("ignore-provider-quota", False))

    def label_cost(self, label) -> Quota:
        return self.manager.adapter.label_quota(label)

    def has_room(self, label) -> bool:
        need = self.label_cost(label)
        if self._pool_usage is None:
            self._pool_usage = Quota.total(
                self.manager.node_cost(n, self.pool)
                for n in self._pool_nodes())
        if not need.fits(pool_limits(self.pool), self._pool_usage):
            return False
        if self._ignore_provider_quota():
            return True
        limits = self.manager.provider_limits()
        if not limits.values:
            return True
        provider_nodes = [n for n in self.nodes_cached()
                          if n.provider == self.provider.name]
        provider_nodes += [n for n in self._launches_this_pass
                           if n not in provider_nodes]
        return need.fits(limits, self.manager.provider_used(provider_nodes))

    def reclaim_ready_node(self) -> None:
        """At quota: delete the oldest unallocated READY node of this pool."""
        now = time.monotonic()
        if now - self._last_reclaim < RECLAIM_INTERVAL:
            return
        spares = sorted((n for n in self._pool_nodes()
                         if n.state == NodeState.READY and not n.allocated_to
                         and not self.zk.is_locked(n)),
                        key=lambda n: n.state_time or 0)
        for node in spares:
            try:
                self.zk.lock_node(node, blocking=False)
            except zk_errors.LockError:
                continue
            if node.state != NodeState.READY or node.allocated_to:
                self.zk.unlock_node(node)
                continue
            self.log.info("At quota: deleting unused ready node %s", node.id)
            node.set_state(NodeState.DELETING)
            self.zk.store_node(node)
            self.manager.delete_node(node)
            self._last_reclaim = now
            return

    # -- images -------------------------------------------------------------
    def image_id(self, label) -> str | None:
        if label.diskimage:
            upload = self.zk.latest_ready_upload(label.diskimage,
                                                 self.provider.name)
            return upload.path if upload is not None else None
        return label.cloud_image

    def image_available(self, label) -> bool:
        if label.diskimage:
            return self.zk.latest_ready_upload(
                label.diskimage, self.provider.name) is not None
        return self.manager.image_available(label)
