"""One worker thread per provider pool: picks requests and serves them.

Threads: ``PoolWorker.<provider>-<pool>`` routes requests, checks its
``RequestHandler`` objects and is the only writer of this pool's component
znode.  The ZooKeeper round trips of taking, accepting, launching and
fulfilling requests run on one pool of ``PoolWorker.<provider>-<pool>-io_N``
threads (``IoThreads``: several requests at once; one action at a time per
handler).  The actions of accepted requests (fulfil, decline, ...) go
ahead of queued takes and always have threads of their own, so a queue of
takes never delays a finished request -- without a second pool for them to
be handed to.  State shared with the I/O threads (handlers list, the
``_taking`` set) is guarded by ``_lock``; the per-pass node and spare lists
are filled by whichever thread asks first, outside ``_lock`` (a lazy
cache may read ZooKeeper for them: no other thread waits on that round
trip but one wanting the same list, under ``_fill_lock``); quota (limits,
usage, reservations) is the pool's ``PoolQuota``
(``nodepool.launcher.quota``), which has its own lock.

Seams: a handler gets the pool through a ``PoolAllocator``
(``nodepool.launcher.allocator``, the handler's ``Allocator`` protocol)
and ``decline``; it never sees this class, so the handler module does not
import this one back.  Of the launcher this worker uses only what
``LauncherSide`` lists (the ZooKeeper client, its readiness, the stats
client, the tenant limits of the config and the pool components).

Routing follows zookeeper.md §8.2: for each request in priority order it
decides skip / defer / decline / accept using the registered pool
components (cached for a second), takes the request lock without blocking,
re-reads the request, and re-checks before acting.  Requests that cannot be
read never reach routing (the ZooKeeper layer quarantines them); those
addressed to this pool are failed on an I/O thread (``unreadable.py``).
Where it defers or declines a request, or an accepted one waits, it tells
its ``WaitBook`` why (``waits.py``), which keeps the reasons in ZooKeeper
for the CLI and the web app (written asynchronously, at the end of a pass).

Sharding: of the pools that would serve a request, one goes first
(``sharding.py``: rendezvous hashing over their component ids); the
others route it after their own requests, once it has waited a grace
while the pools ahead took none of theirs, so launchers seldom race for
one lock.  When all pools are alike, requests that would wait anyway
are not even read (``_unread_filter``; the caches are lazy), so a
launcher reads little of what the others serve.  The ``Shard`` is the
routing thread's alone.

Failure story: ZooKeeper trouble while handling a request (ConnectionLoss,
...: ``zk_errors.is_transient``) never declines it: the handler retries the
action on a later pass; any other exception while handling a request
declines it; an exception in the loop itself is logged and the loop
continues after a short pause.  While the ZooKeeper session is suspended or
lost the worker does nothing (no accept, decline or write) and resumes on
reconnection; its component is re-registered by the ZooKeeper layer after a
new session.
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
from collections import Counter, deque
from typing import Callable, Protocol

from nodepool.driver.createpool import IDLE_TIMEOUT, IdleSurplus
from nodepool.driver.quota import Quota
from nodepool.launcher import sharding, unreadable, waits
from nodepool.launcher.allocator import PoolAllocator
from nodepool.launcher.handler import RequestHandler
from nodepool.launcher.quota import PoolQuota, bound_cost, tenant_verdict
from nodepool.launcher.sharding import Shard, Turn
from nodepool.version import __version__
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState, PoolComponent, RequestState

# Changes arrive in bursts (every node and request write wakes us); a short
# floor between passes lets one pass serve a whole burst.
MIN_PASS_INTERVAL = 0.05
PASS_SPACING = 4.0
# ZooKeeper round trips dominate request handling; this many requests are
# locked, accepted, launched and fulfilled at once.  Taking a request is
# three round trips in a row (lock, create the node, lock the node), and
# under a burst a write's reply takes ~20 ms (the server batches writes),
# so the number of takes in flight sets the accept rate: in
# tools.bench_core, 8 threads gave ~100 requests/s, 24 gave ~120.  The
# threads only wait.
IO_THREADS = 24
# Threads only the actions of accepted requests (fulfil, decline, ...) may
# use, on top of those the takes share with them.
FINISH_THREADS = 4
# Takes queued at once: more would only be routed on staler data.
MAX_TAKING = 4 * IO_THREADS
# Another busy pool's requests an idle pool takes per routing pass at most
# (newest first, sharding's SPARE): enough to keep a launch call filled.
SPARE_TAKES = 25
# Per-pass gauges (cli.md §4) at most this often: a busy worker passes
# up to 20 times a second, and a repeated gauge carries nothing new.
STATS_INTERVAL = 1.0
# A request waiting at quota holds back later requests of its own labels
# (they keep their order) but not requests of other labels that fit now --
# until it has waited this long: from then on the pool takes no new
# request, so capacity that frees up goes to it (no starvation).
STARVE_AFTER = 60.0
# An unreadable request addressed to us whose lock was taken or that
# changed under us is tried again after this long (not every pass).
UNREADABLE_RETRY = 1.0


class LauncherSide(Protocol):
    """What a pool worker uses of its launcher (``Launcher``)."""

    zk: object          # nodepool.zk.ZooKeeper
    stats: object       # nodepool.stats client
    tracer: object      # nodepool.launcher.tracing (NULL: off)
    config: object      # for ``tenant_resource_limits``
    usage: object       # nodepool.launcher.usagebook.UsageBook (claims)

    def zk_ready(self) -> bool: ...

    def pool_components(self, fresh: bool = False) -> list: ...


class ProviderSide(Protocol):
    """What a pool worker (and its ``PoolAllocator``) uses of its
    ``ProviderManager``: costs and quota, max-concurrency, offerings, what
    it can serve, and the hand-over of launches and deletes."""

    adapter: object     # label_quota, availability_zones, installation
    launches_nodes: bool

    def node_cost(self, node: Node, pool=None) -> Quota: ...

    def provider_limits(self) -> Quota: ...

    def provider_used(self, nodes) -> Quota: ...

    def reserve_take(self, request_id: str, launches: int) -> bool: ...

    def end_take(self, request_id: str) -> None: ...

    def offering_unavailable(self, pool, label): ...

    def offering_short(self, pool, label): ...

    def has_capacity_now(self, worker, request) -> bool: ...

    def label_usable(self, label) -> bool: ...

    def image_available(self, label) -> bool: ...

    def owns(self, node: Node) -> bool: ...

    def launch(self, node: Node, pool, label, request=None,
               image_external_id=None): ...

    def delete_node(self, node: Node, extra_ids=()) -> None: ...


class IoThreads:
    """The pool worker's I/O threads: ``size`` threads named
    ``<prefix>_N`` (started as work arrives) running submitted calls.

    Two queues: ``urgent`` calls (the actions of accepted requests) run
    before any queued other call (takes), and the other calls use at most
    ``others`` threads at once, so ``size - others`` threads are always
    there for urgent ones.  One pool instead of two keeps a request's
    walk on one kind of thread from its take to its fulfilment.  A call
    that raises is logged; ``shutdown`` runs what is queued, then ends
    the threads.  Threads end as the create pool's do: one that waited
    ``idle_timeout`` for work, and those a whole ``idle_timeout`` went
    without (``IdleSurplus``: under a trickle of calls they take turns,
    so without it the pool would keep its peak for good)."""

    def __init__(self, prefix: str, size: int, others: int, log,
                 idle_timeout: float = IDLE_TIMEOUT):
        self.prefix = prefix
        self.size = size
        self.others = others
        self.log = log
        self.idle_timeout = idle_timeout
        self._cond = threading.Condition()
        self._urgent: deque = deque()
        self._queue: deque = deque()
        self._threads: list[threading.Thread] = []
        self._spawned = 0
        self._idle = 0
        self._running_others = 0
        self._closed = False
        self._surplus = IdleSurplus(idle_timeout)
        self._retiring = 0      # threads to end after their call

    @property
    def threads(self) -> int:
        """Threads alive now."""
        with self._cond:
            return len(self._threads)

    def submit(self, fn: Callable, *args, urgent: bool = False) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.prefix}: shut down")
            (self._urgent if urgent else self._queue).append((fn, args))
            self._cond.notify()
            # A waiting thread may be woken already but not yet running:
            # start one while more is queued than threads wait.
            backlog = len(self._urgent) + len(self._queue)
            if backlog > self._idle and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, daemon=True,
                    name=f"{self.prefix}_{self._spawned}")
                self._spawned += 1
                self._threads.append(thread)
                thread.start()

    def _next(self):
        """The next call to run, or None once shut down and drained or
        when this thread ends for want of work (under ``_cond``)."""
        while True:
            if self._urgent:
                return self._took(self._urgent.popleft(), False)
            if self._queue and self._running_others < self.others:
                self._running_others += 1
                return self._took(self._queue.popleft(), True)
            if self._closed and not self._queue:
                self._cond.notify_all()     # the other waiters end too
                return None
            self._idle += 1
            woken = self._cond.wait(self.idle_timeout)
            self._idle -= 1
            if not woken and not (self._urgent or self._queue
                                  or self._closed):
                return self._end()

    def _took(self, call, other: bool):
        self._retiring = min(self._retiring + self._surplus.took(self._idle),
                             len(self._threads) - 1)
        return call, other

    def _end(self) -> None:
        """This thread ends (under ``_cond``)."""
        self._threads.remove(threading.current_thread())

    def _work(self) -> None:
        while True:
            with self._cond:
                item = self._next()
            if item is None:
                return
            (fn, args), other = item
            try:
                fn(*args)
            except Exception:
                self.log.exception("Error in I/O call %s", fn)
            finally:
                with self._cond:
                    if other:
                        self._running_others -= 1
                        self._cond.notify()
                    ending = (self._retiring and not self._closed
                              and not (self._urgent or self._queue))
                    if ending:
                        self._retiring -= 1
                        self._end()
            if ending:
                return

    def shutdown(self, wait: bool = True) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()


class Waiting:
    """One pass's view of the requests waiting at quota (see _route)."""

    __slots__ = ("labels", "starved", "taken", "spares")

    def __init__(self, labels: set, starved: bool, taken: Quota):
        self.labels = labels
        self.starved = starved
        self.taken = taken      # what this pass let through meanwhile
        # per label, the ready spares this pass's takes will reuse
        self.spares: Counter = Counter()


class PoolWorker:
    starve_after = STARVE_AFTER

    def __init__(self, launcher: LauncherSide, provider, pool,
                 manager: ProviderSide, clock=time.monotonic):
        self.launcher = launcher
        self.clock = clock      # waiting at quota, starvation, reclaiming
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
        self._costed: list[Node] | None = None   # quota: any version
        self._costed_births: int | None = None   # node births it saw
        self._bound: Quota | None = None     # quota.bound_cost
        self._spares: dict[str, list[Node]] | None = None
        self._last_stats = 0.0
        # (path, mzxid) of quarantined requests -> monotonic time before
        # which they are not looked at again (inf: not addressed to us).
        self._unreadable: dict[tuple[str, int], float] = {}
        # Request id -> when (clock) a routing pass first read it taken
        # (not ``requested``): its next change is most likely its
        # fulfilment, not worth reading for a grace (_unread_filter).
        self._taken_seen: dict[str, float] = {}
        # Request id -> (the pool first for it, when we first saw it
        # changed): most likely taken by that pool (_guessed_taken).
        self._taken_guess: dict[str, tuple[str, float]] = {}
        # The last routing pass found nothing of ours to take: a busy
        # pool's requests past their grace are then ours too (sharding).
        self._idle = False
        self._spare: set[str] = set()
        self.passes = 0     # routing passes done (tests wait on it)
        # This pass's node and spare lists (_per_pass): the slots and
        # their generation are guarded by _pass_lock, held for no call;
        # a fill (maybe a ZooKeeper read) by _fill_lock.
        self._pass_lock = threading.Lock()
        self._fill_lock = threading.RLock()
        self._generation = 0
        # Shared with the I/O threads, guarded by _lock:
        self._lock = threading.RLock()
        self._taking: set[str] = set()          # request ids being taken
        # request id -> labels, of the requests taken to wait at quota
        # (``_passes_waiting``): while their take is in flight they hold
        # back their labels as their handlers will
        self._takes_to_wait: dict[str, frozenset] = {}
        self.quota = PoolQuota(
            pool, provider.name, nodes=self.nodes_costed,
            label_cost=manager.adapter.label_quota,
            node_cost=lambda node: manager.node_cost(node, pool),
            provider_limits=manager.provider_limits,
            provider_used=manager.provider_used,
            births=self.zk.node_births, bound=self._bound_cost,
            clock=clock)
        self.shard = Shard(self.id, clock=clock)
        self.allocator = PoolAllocator(pool, provider.name, self.id, self.zk,
                                       manager, self.quota, self.spares)
        # Why each request waits here, kept in ZooKeeper (waits.py).
        self.waits = waits.WaitBook(self.zk, self.id, provider.name,
                                    pool.name, socket.gethostname())
        # Takes use IO_THREADS of them at most; the actions of accepted
        # requests (fulfil, decline, ...) go first and have FINISH_THREADS
        # more, so a queue of takes never delays a finished request.
        self.io = IoThreads(f"PoolWorker.{self.name}-io",
                            IO_THREADS + FINISH_THREADS, IO_THREADS,
                            self.log)

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

    def session_lost(self) -> None:
        """The session (and every lock of ours) is gone: drop all handlers
        without writing; their requests are lost requests now, which the
        cleanup worker of any launcher resets to ``requested``."""
        with self._lock:
            handlers, self.handlers = self.handlers, []
        for handler in handlers:
            handler.done = True
            handler.trace.end(handler.request, lost="ZooKeeper session lost")
        self.waits.lost()
        if handlers:
            self.log.warning("ZooKeeper session lost: let go of %d request(s)",
                             len(handlers))

    @property
    def paused(self) -> bool:
        return any(h.paused for h in self.handlers)

    @property
    def paused_reason(self) -> str | None:
        """The quota verdict the first waiting request waits on."""
        for handler in list(self.handlers):
            if handler.paused and handler.verdict is not None:
                return handler.verdict.describe()
        return None

    def _waiting(self) -> "Waiting":
        """This pass's view of our requests waiting at quota."""
        with self._lock:
            waiting = [h for h in self.handlers
                       if h.paused and h.waiting_since is not None]
            self._takes_to_wait = {r: lb for r, lb in
                                   self._takes_to_wait.items()
                                   if r in self._taking}
            taking = list(self._takes_to_wait.values())
        labels: set[str] = set().union(*taking)
        for handler in waiting:
            labels |= set(handler.request.node_types)
        oldest = min((h.waiting_since for h in waiting), default=None)
        starved = oldest is not None and \
            self.clock() - oldest >= self.starve_after
        return Waiting(labels=labels, starved=starved, taken=Quota())

    def held(self) -> tuple[set[str], set[str]]:
        """(request ids, node ids) our handlers hold or are taking: the
        cleanup worker's fast duties leave them alone."""
        with self._lock:
            handlers = list(self.handlers)
            requests = set(self._taking)
        nodes: set[str] = set()
        for handler in handlers:
            requests.add(handler.request.id)
            nodes |= handler.node_ids()
        return requests, nodes

    # -- the loop -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.launcher.zk_ready():
                    self._wake.wait(0.5)
                    continue
                begun = time.monotonic()
                cpu_begun = time.thread_time()
                try:
                    self._pass()
                except Exception:
                    self.log.exception("Error in pool worker loop")
                    self._stop.wait(1.0)
                # CPU, not wall time: waiting for the GIL while other
                # threads work is no reason to pass less often.
                took = time.thread_time() - cpu_begun
                busy = bool(self.handlers)
                self._wake.wait(0.05 if busy else 1.0)
                self._wake.clear()
                # A pass reads every waiting request: with a long queue,
                # space passes so that routing stays a small share of the
                # CPU the requests themselves need.
                floor = max(MIN_PASS_INTERVAL, PASS_SPACING * took)
                rest = floor - (time.monotonic() - begun)
                if rest > 0:
                    self._stop.wait(rest)
        finally:
            self._shutdown()

    def _pass(self) -> None:
        self._new_pass()
        self._publish_component()
        self._emit_stats()
        self._poll_handlers()
        self._assign_requests()
        self.waits.end_pass(list(self.handlers), self.manager.launches_nodes)
        self._decline_unreadable()
        self.passes += 1

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
        self.io.shutdown(wait=True)
        for handler in self.handlers:
            try:
                handler.release()
            except Exception:
                self.log.exception("Could not release request %s",
                                   handler.request.id)
        self.handlers = []
        self.waits.clear()
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
            self.component.version = __version__
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
        paused = [h for h in self.handlers if h.paused and not h.busy]
        for handler in sorted(paused, key=lambda h: h.request.sort_key()):
            self._guard(handler, handler.fill)
        for handler in list(self.handlers):
            if handler.busy or handler.done:
                continue
            try:
                action = handler.check()
            except Exception:
                handler.log.exception("Error checking request %s",
                                      handler.request.id)
                action = (lambda h=handler: h.decline(
                    "an error occurred while handling it"))
            if action is not None:
                handler.busy = True
                self.io.submit(self._run_action, handler, action,
                               urgent=True)
        with self._lock:
            done = [h for h in self.handlers if h.done]
            self.handlers = [h for h in self.handlers if not h.done]
        for handler in done:
            self.waits.finished(handler, self.launcher, self.launcher.stats)

    def _run_action(self, handler: RequestHandler, action) -> None:
        try:
            self._guard(handler, action)
        finally:
            handler.busy = False
            self.wake()

    def _guard(self, handler: RequestHandler, fn) -> None:
        # Launches handed over by the action take the request's span as
        # their parent (nodepool.launcher.tracing).
        with handler.trace.current():
            handler.run(fn, connected=self.launcher.zk_ready)

    # -- request routing (zookeeper.md §8.2) ---------------------------------
    def _assign_requests(self) -> None:
        if self.provider.max_concurrency == 0:
            return
        components = self.launcher.pool_components()
        unread: list[str] = []
        listed: set[str] = set()
        now = self.clock()

        def want(r) -> bool:
            listed.add(r.id)
            if r.state != RequestState.REQUESTED:
                self._taken_seen.setdefault(r.id, now)
                return False
            return self.id not in r.declined_by
        # Read-only records: only the few we take are copied (in _take).
        requests = self.zk.iter_requests(
            cached=True, want=want, shared=True,
            ids=self._unread_filter(components, unread, listed))
        self._taken_guess = {k: g for k, g in self._taken_guess.items()
                             if k in listed}
        self._taken_seen = {k: t for k, t in self._taken_seen.items()
                            if k in listed}
        with self._lock:
            handled = {h.request.id for h in self.handlers} | self._taking
        mine = self.supported_labels
        waiting = self._waiting()
        out = self._labels_out_of_capacity()
        short = self._labels_short()
        # Requests we can fully serve come before those we would decline
        # (a stable sort keeps iter_requests' priority order in each group).
        requests.sort(key=lambda r: not set(r.node_types) <= mine)
        for request in self._in_turn(requests, components, unread):
            if self._stop.is_set():
                return
            if (request.state != RequestState.REQUESTED
                    or self.id in request.declined_by
                    or request.id in handled):
                continue
            with self._lock:
                if len(self._taking) >= MAX_TAKING:
                    return   # the rest waits for a later pass
            self.waits.seen(request.id)
            decision = self._route(request, components, waiting, out, short)
            if decision is None or (decision != "accept"
                                    and request.id in self._spare):
                continue    # another pool's spare: only to launch it now
            # Reserved before the take, released after it has handed its
            # launches to the manager: no moment where a request counts
            # neither as taken nor as launching, in any pool.
            if decision == "accept" and not self.manager.reserve_take(
                    request.id, len(request.node_types)):
                self.waits.note(request.id, waits.throttled(
                    self.provider.name, self.provider.max_concurrency))
                continue
            with self._lock:
                self._taking.add(request.id)
            self.shard.taking(request.id)
            self.io.submit(self._take_async, request, decision)

    def _unread_filter(self, components: list, unread: list,
                       listed: set | None = None):
        """The ids of the requests worth reading this pass, or None (all).

        When every pool of our priority serves the same labels from the
        same provider and no offering record blocks one of them, the
        pools that would serve a request are known from its id alone
        (``sharding.Shard.unread_waits``): one another pool goes first
        for is not read while it would wait anyway, so the launchers
        that do not take a request do not read it.  One written since
        its creation is read (it may have been declined), except for a
        grace after we first read it taken -- or, when another pool goes
        first for it, while that pool is registered (at most ten graces
        after we first see it changed): that change is most likely its
        take (``_guessed_taken``).  A changed one another pool keeps a
        wait record for is read at once (a decline writes one, just
        after the request).  Its next write is most likely its
        fulfilment, and Zuul removes it soon after (a request its taker
        hands back meanwhile reaches us up to a grace later).  The
        ids left unread waiting go to ``unread``, those left unread at
        all to ``listed``."""
        if self.component is None or self.component.paused:
            return None
        mine = self.supported_labels
        peers = [c for c in components if c.id != self.id
                 and c.priority == self.priority and not c.paused]
        if not peers or any(
                set(c.supported_labels or []) != mine
                or c.provider_name != self.provider.name
                or self._blocked(c, mine, short=True) for c in peers):
            return None
        members = [c.id for c in peers] + [self.id]

        now = self.clock()
        declined: list[set[str]] = []

        def maybe_declined(request_id: str) -> bool:
            # Once per pass, and only when asked: names, no read.
            if not declined:
                declined.append(self.zk.requests_with_waits(but=self.id))
            return request_id in declined[0]

        def worth_reading(request_id: str) -> bool:
            # A request written since it was created may have been
            # declined by the pool ahead: read, it may be ours now.
            if not self.zk.request_unchanged(request_id):
                if maybe_declined(request_id):
                    self._taken_guess.pop(request_id, None)
                    return True
                if self._guessed_taken(request_id, members, now):
                    if listed is not None:
                        listed.add(request_id)
                    return False
                taken = self._taken_seen.get(request_id)
                if taken is not None and now - taken < self.shard.grace:
                    if listed is not None:
                        listed.add(request_id)
                    return False
                return True
            if self.shard.unread_waits(request_id, members,
                                       idle=self._idle):
                unread.append(request_id)
                return False
            return True
        return worth_reading

    def _guessed_taken(self, request_id: str, members: list,
                       now: float) -> bool:
        """A changed request another pool goes first for (``members``
        ranked): that change is most likely the take (``pending``) of
        that pool, so it is left unread while that pool stays among the
        members, for at most the shard's bound (ten graces) from our
        first sight of the change -- a pool that stops unregisters just
        after handing its requests back, a lost taker's are reset after
        it left, and a decline writes a wait record (read at once).  False (read it, as
        any changed request) when we go first, the pool left, or the
        bound is over."""
        guess = self._taken_guess.get(request_id)
        if guess is None:
            if request_id in self._taken_seen:
                return False     # read taken before: its own grace
            first = sharding.ranking(request_id, members)[0]
            if first == self.id:
                return False
            guess = self._taken_guess[request_id] = (first, now)
        first, since = guess
        if first in members and now - since < self.shard.bound:
            return True
        del self._taken_guess[request_id]
        return False

    def _in_turn(self, requests: list, components: list,
                 unread: list = ()):
        """``requests`` in routing order, but those another pool goes
        first for (``sharding.py``) only once they have waited their grace
        and that pool makes no progress, and after all of ours.
        ``unread``: ids of waiting requests left unread this pass (their
        first sight is kept)."""
        self.shard.keep([r.id for r in requests] + list(unread))
        # Same priority, not paused: the pools a request would go to now
        # (our own paused flag as the others see it).
        peers = {c.id: c for c in components if c.id != self.id
                 and c.priority == self.priority and not c.paused}
        if not peers:
            yield from requests     # the only pool: every request is ours
            return
        me = [] if self.component is None or self.component.paused \
            else [self.id]
        mine = self.supported_labels
        late, spare = [], []
        idle, self._idle = self._idle, False
        self._spare = set()
        own = False     # a request we go first for and could serve
        for request in requests:
            turn = self._turn(request, peers, me, mine, idle)
            if turn is Turn.MINE:
                own = own or set(request.node_types) <= mine
                yield request
            elif turn is Turn.LATE:
                late.append(request)
            elif turn is Turn.SPARE:
                spare.append(request)
        yield from late
        # Idle (for this pass's spares and the next pass's reading):
        # nothing of ours, none late, no take of ours in flight.
        with self._lock:
            taking = bool(self._taking)
        self._idle = not own and not late and not taking
        if self._idle and spare:
            # Newest first: the busy pool works from the other end.
            spare = spare[::-1][:SPARE_TAKES]
            self._spare = {r.id for r in spare}
            yield from spare

    def _turn(self, request, peers: dict, me: list, mine: set,
              idle: bool = False) -> Turn:
        labels = set(request.node_types)
        if not labels <= mine:
            return Turn.MINE    # routing skips or declines it
        ours = request.provider == self.provider.name
        members = [i for i, c in peers.items()
                   if labels <= set(c.supported_labels or [])
                   and i not in request.declined_by
                   and (not ours or c.provider_name == request.provider)]
        return self.shard.turn(request.id, members + me,
                               lambda i: self._blocked(peers[i], labels),
                               idle=idle)

    def _decline_unreadable(self) -> None:
        """Fail the quarantined requests addressed to this pool (see
        ``unreadable.py``), each version looked at once unless retried."""
        entries = self.zk.quarantined("request")
        if not entries:
            return
        if len(self._unreadable) > 10000:
            self._unreadable.clear()
        now = time.monotonic()
        others = {c.provider_name for c in self.launcher.pool_components()
                  if c.provider_name != self.provider.name}
        for entry in entries:
            key = (entry.path, entry.mzxid)
            if self._unreadable.get(key, 0.0) > now:
                continue
            payload = self.zk.quarantined_payload(entry)
            if payload is None or not unreadable.addressed_to(
                    payload, self.id, self.provider.name,
                    self.supported_labels, others):
                self._unreadable[key] = math.inf
                continue
            with self._lock:
                if entry.name in self._taking:
                    continue
                self._taking.add(entry.name)
            self._unreadable[key] = now + UNREADABLE_RETRY
            self.io.submit(self._fail_unreadable, entry, others)

    def _fail_unreadable(self, entry, others: set[str]) -> None:
        try:
            reason = self.zk.decline_unreadable_request(
                entry.name, self.id, lambda payload: unreadable.addressed_to(
                    payload, self.id, self.provider.name,
                    self.supported_labels, others))
            if reason is not None:
                self.log.info("Declined request %s (failed): it cannot be "
                              "read: %s", entry.name, reason)
        except Exception as exc:
            self.log.warning("Could not decline unreadable request %s: %s",
                             entry.name, exc)
        finally:
            with self._lock:
                self._taking.discard(entry.name)

    def _take_async(self, request, decision: str) -> None:
        try:
            self._take(request, decision)
        except Exception as exc:
            closing = self._stop.is_set() or zk_errors.is_closed(exc)
            if closing or zk_errors.is_transient(exc):
                # The connection failing or closing (a flood of these at
                # shutdown): one line each, no traceback; the request is
                # taken again by a later pass or another launcher.
                level = logging.DEBUG if closing else logging.WARNING
                self.log.log(level, "Could not take request %s: ZooKeeper "
                             "unavailable (%r)", request.id, exc)
            else:
                self.log.exception("Error taking request %s", request.id)
        finally:
            self.manager.end_take(request.id)
            with self._lock:
                self._taking.discard(request.id)
            self.wake()

    def _route(self, request, components, waiting=None,
               out: frozenset = frozenset(),
               short: frozenset = frozenset()) -> str | None:
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
               and c.id != self.id and not self._blocked(c, labels)
               for c in candidates):
            return None
        if not labels <= self.supported_labels and candidates:
            return None
        reason = self.decline_reason(request)
        if reason is not None:
            return reason
        if out and not out.isdisjoint(request.node_types):
            self._note_offering(request, out)
            return None     # another pool serves it, or it waits: no create
        if short and not short.isdisjoint(request.node_types) and any(
                c.id != self.id and c.priority <= self.priority
                and not c.paused and not self._blocked(c, labels, short=True)
                for c in candidates):
            return None     # a pool whose offering is not short goes first
        if not self._can_take_now(request):
            return None
        if waiting is not None and not self._passes_waiting(request, waiting):
            return None
        return "accept"

    def _note_offering(self, request, out: frozenset) -> None:
        labels = [lb for lb in request.node_types if lb in out]
        record = self.manager.offering_unavailable(
            self.pool, self.pool.labels[labels[0]])
        if record is not None:
            self.waits.note(request.id, waits.offering(record, labels))

    def _labels_out_of_capacity(self) -> frozenset:
        """This pool's labels whose offering the cloud has no capacity for
        now (once per pass: requests are many, labels few)."""
        return frozenset(
            name for name, label in self.pool.labels.items()
            if self.manager.offering_unavailable(self.pool, label)
            is not None)

    def _labels_short(self) -> frozenset:
        """This pool's labels whose offering the cloud keeps answering
        with fewer instances than asked (once per pass)."""
        return frozenset(
            name for name, label in self.pool.labels.items()
            if self.manager.offering_short(self.pool, label) is not None)

    def _blocked(self, component, labels, short: bool = False) -> bool:
        """Does a running offering record keep ``component`` (another
        pool, possibly another launcher's) from serving ``labels``?  With
        ``short``, a short record counts too."""
        now = time.time()
        for record in self.zk.iter_offerings(component.provider_name):
            if (record.unavailable(now) or short and record.short(now)) \
                    and any(record.blocks(component.name, label)
                            for label in labels):
                return True
        return False

    def _passes_waiting(self, request, waiting: "Waiting") -> bool:
        """May ``request`` start, given the requests waiting at quota?

        Not once a waiting request has reached the starvation bound, nor
        when it shares a label with one (requests of one label keep their
        priority order).  Otherwise it is taken: if its nodes fit now (on
        top of what this pass already let through; a ready spare of its
        label costs nothing) it is served at once, else it waits too, and
        from then on holds back its own labels -- so a pool at quota takes
        one request per label and leaves the rest to pools that have room,
        as upstream's paused pool does, even when a whole burst arrives
        within one pass.
        """
        if waiting.starved:
            self.waits.note(request.id, waits.starved(self.starve_after))
            return False
        labels = set(request.node_types)
        if waiting.labels & labels:
            self.waits.note(request.id, waits.queued(waiting.labels & labels))
            return False
        need = self.quota.cost(self.pool.labels[label]
                               for label in request.node_types)
        if not self.quota.check(waiting.taken + need):
            # At quota: the labels' ready spares (this pass's list, read
            # only now) may serve it without a launch.
            launched = []
            for label in request.node_types:
                if waiting.spares[label] < len(self.spares(label)):
                    waiting.spares[label] += 1
                else:
                    launched.append(self.pool.labels[label])
            need = self.quota.cost(launched)
            if launched and not self.quota.check(waiting.taken + need):
                waiting.labels |= labels
                with self._lock:
                    self._takes_to_wait[request.id] = frozenset(labels)
                return True
        waiting.taken += need
        return True

    def _can_take_now(self, request) -> bool:
        if not self.manager.has_capacity_now(self, request):
            self.waits.note(request.id, waits.no_capacity(
                request.node_types, not self.manager.launches_nodes))
            return False
        if not self._tenant_allows(request):
            return False
        # max-concurrency: checked when reserving (manager.reserve_take).
        return True

    def _tenant_allows(self, request) -> bool:
        """tenant-resource-limits: defer a tenant's request while it is at
        its limit (``quota.tenant_verdict``)."""
        limits = self.launcher.config.tenant_resource_limits
        if not request.tenant_name or not limits.get(request.tenant_name):
            return True
        need = self.quota.cost(self.pool.labels[label]
                               for label in request.node_types
                               if label in self.pool.labels)
        verdict = tenant_verdict(limits, request.tenant_name, need,
                                 self.nodes_cached())
        if not verdict:
            self.waits.note(request.id, waits.at_quota(verdict))
        return bool(verdict)

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
        need = self.quota.cost(self.pool.labels[label]
                               for label in request.node_types)
        if not self.quota.never_fits(need):
            return "it would exceed quota"
        return None

    def _take(self, request, decision: str) -> None:
        request = request.clone()     # ours to lock, re-read and write
        if decision == "accept":
            # A request nobody locked before, unchanged since we read it:
            # lock it and mark it pending in one transaction.
            request.set_state(RequestState.PENDING)
            if self.zk.lock_and_store_request(request):
                self._start_handler(request, written=True)
                return
        try:
            self.zk.lock_request(request, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        # (A lock whose re-read failed is released by lock_request.)
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
        self._start_handler(request, written=False)

    def _start_handler(self, request, written: bool) -> None:
        handler = RequestHandler(
            request, self.zk, self.allocator, self.decline, clock=self.clock,
            trace=self.launcher.tracer.request(request, self.provider.name,
                                               self.pool.name))
        handler.busy = True
        with self._lock:
            self.handlers.append(handler)
        self._run_action(handler, lambda: handler.accept(written))

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
        if request.state == RequestState.REQUESTED:
            self.waits.declined(request.id, waits.declined_here(
                reason, request, self.pool, registered,
                self.launcher.pool_components(), self.image_available))

    # -- capacity (shared with the I/O threads) --------------------------------
    def _per_pass(self, slot: str, fill: Callable[[], object]):
        """This pass's value of ``slot``, filled by the first thread that
        asks.  A lazy cache may read ZooKeeper in ``fill``: that runs
        under ``_fill_lock`` only (threads wanting a list wait for it, no
        other), and a list filled across the start of a new pass is used
        once but not kept for it."""
        with self._pass_lock:
            value = getattr(self, slot)
        if value is not None:
            return value
        with self._fill_lock:
            with self._pass_lock:
                value = getattr(self, slot)
                generation = self._generation
            if value is not None:
                return value        # another thread filled it meanwhile
            value = fill()
            with self._pass_lock:
                if self._generation == generation:
                    setattr(self, slot, value)
            return value

    def _new_pass(self) -> None:
        """Forget the previous pass's node and spare lists."""
        with self._pass_lock:
            self._generation += 1
            self._nodes = None
            self._costed = None
            self._spares = None

    def nodes_cached(self) -> list[Node]:
        # Only what quota, reuse and tenant limits look at: this
        # provider's nodes and nodes carrying a tenant.
        return self._per_pass("_nodes", self._read_nodes)

    def _read_nodes(self) -> list[Node]:
        name = self.provider.name
        # A live peer's nodes that are not ready stand in from its usage
        # record, unread (usagebook.py).  Young ones no record claims yet
        # are read only when tenant limits, which need their tenant, are
        # configured.
        claims = self.launcher.usage.claims()
        config = self.launcher.config
        young = bool(config is not None and config.tenant_resource_limits)
        # Read-only records (clone before locking or writing).
        nodes = list(self.zk.iter_nodes(
            cached=True, want=lambda n: n.provider == name
            or n.tenant_name is not None, shared=True,
            ids=lambda i: claims.reads_ready(i, young)))
        read = {n.id for n in nodes}
        return nodes + [n for n in claims.nodes() if n.id not in read
                        and (n.provider == name
                             or n.tenant_name is not None)]

    def nodes_costed(self) -> list[Node]:
        """Our provider's nodes as quota counts them (this pass, or since
        the last node znode appeared).  Every
        state counts and a node's cost is set when it is allocated (its
        launch may refine it to the instance's figures), so any version
        the cache read before will do: nodes are read once, not at each
        of their changes, and a live peer's not at all (its usage
        record stands for them).  (Spares and tenant
        limits, which look at states and tenants, use ``nodes_cached``.)"""
        # Quota alone decides when to recount (quota.FRESH_INTERVAL); the
        # list it gets is this pass's unless a node znode appeared since
        # it was read (another launcher's, most often).  Quota asks under
        # its own lock, so one thread reads at a time.
        births = self.zk.node_births()
        with self._pass_lock:
            if self._costed is not None and births == self._costed_births:
                return self._costed
        nodes = self._read_costed()
        with self._pass_lock:
            self._costed, self._costed_births = nodes, births
        return nodes

    def _read_costed(self) -> list[Node]:
        name = self.provider.name
        # A live peer's nodes are counted from its usage record, unread;
        # a young one no record claims yet at the most a label of ours
        # costs (usagebook.py).
        claims = self.launcher.usage.claims()
        nodes = list(self.zk.iter_nodes(
            cached=True, want=lambda n: n.provider == name,
            shared=True, current=False, ids=claims.reads))
        return nodes + claims.nodes(name, self.pool.name, self._bound_cost())

    def _bound_cost(self) -> Quota:
        """The most any label of our provider costs (per resource)."""
        if self._bound is None:
            self._bound = bound_cost(
                self.manager.adapter.label_quota(label)
                for pool in self.provider.pools.values()
                for label in pool.labels.values())
        return self._bound

    def spares(self, label: str) -> list[Node]:
        """READY unallocated nodes of this pool with ``label`` (this pass)."""
        return list(self._per_pass("_spares", self._find_spares)
                    .get(label, []))

    def _find_spares(self) -> dict[str, list[Node]]:
        spares: dict[str, list[Node]] = {}
        for node in self.nodes_cached():
            if (node.state == NodeState.READY
                    and not node.allocated_to
                    and node.provider == self.provider.name
                    and node.pool == self.pool.name
                    and self.manager.owns(node)):
                for name in node.type or []:
                    spares.setdefault(name, []).append(node)
        return spares

    # -- images -------------------------------------------------------------
    def image_available(self, label) -> bool:
        if label.diskimage:
            return self.zk.latest_ready_upload(
                label.diskimage, self.provider.name) is not None
        return self.manager.image_available(label)
