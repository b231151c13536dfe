"""The deleted-node worker: removes nodes nobody needs any more.

One ``DeletedNodeWorker`` per launcher.  Every ~5 s, and sooner when the
node cache changes, it walks the cached nodes of the providers in our
config (zookeeper.md §9.1):

- READY nodes allocated to a request that no longer exists are deallocated;
- ``used``, ``in-use``, ``building``, ``failed``, ``aborted``, ``deleting``
  and ``deleted`` nodes whose lock it can take are deleted: ``deleting`` is
  written, the provider deletes the instance, then the znode is removed.
  Locks held by others (a requester using an ``in-use`` node, a launcher
  still building) make it skip the node; once the holder is gone the lock
  is free and the node is deleted.

Crash recovery: a launcher killed mid-launch leaves its node ``building``
and unlocked (the lock died with its session).  If the node carries a
create intent (``driver_data["create"]``, written before the create call)
but no ``external_id`` -- or is still ``building`` -- the instance may
exist without its id having been stored, so the provider's adapter is
asked for every instance tagged with the node id (``find_instances``) and
those carrying our installation's id are deleted with the node, without
waiting for the two-pass leak cleanup (another installation on the same
account has a node of the same id; an instance without the tag is left to
the leak cleanup's rule).  A node left ``deleting`` by a dead launcher is
simply deleted again (deleting is idempotent).

Threads: ``DeletedNodeWorker`` (a ``PeriodicWorker``) runs every pass; the
launcher's cache listener (``Launcher._zk_changed``, on the thread that
applied a cache change, often kazoo's connection thread) only sets its
wake event, and passes start at least ``MIN_INTERVAL`` apart.  The pass
picks the nodes to act on from the cache on its own thread.  Acting on a
node costs about four ZooKeeper round trips (the lock's directory,
contender and listing, then the ``deleting`` write) and, after a cut-short launch, the
adapter's ``find_instances`` cloud call; done one after another, a loaded
machine's 20-60 ms round trips held a soak at 20 nodes/s to ~15 deletes a
second, and ``used`` nodes piled up until max-servers was full of them.  So
a pass with more than one node to act on hands each to one of ``workers``
threads (``DeletedNodeWorker-io-N``, 8 by default, a ``CreatePool`` made
on first use, whose idle threads end after a minute) and waits for all of them before it ends: the round trips of
several nodes are in flight at once, one pass still never overlaps the
next, and a lone node (the common case) stays on the worker's own thread.
What the handlers share is thread-safe: the ZooKeeper facade, the
managers' ``delete_node`` (appends under the manager's ``_lock`` and wakes
its loop; instance deletes run on the provider's loop thread, and nodes it
is deleting are skipped, ``is_deleting``) and the pass's stop flag.
``_foreign_seen`` is the pass thread's alone.

Failure story: a cloud delete error releases the lock and leaves the node
in ``deleting``; the next round retries.  While a provider backs off after
a credential or endpoint error (``ProviderManager.cloud_backing_off``) its
nodes are not touched at all: the first pass after the back-off sends
their deletes again, so they follow the provider's exponential back-off
instead of one attempt per pass.  ZooKeeper trouble (or the
connection closing at shutdown) ends the pass with one warning instead of
an error per remaining node (the first handler to meet it says so; the
others see the pass stopping and start no new node).  A failed lookup
releases the lock and leaves the node as it was.  Nodes of providers that are not
in our config are never touched (as upstream: they wait for their provider
to return), and neither are nodes that another kind of driver left under a
configured provider's name (``ProviderManager.owns``): deleting them through
the configured driver would drop their records while their instances kept
running.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import CancelledError
from typing import Callable, Protocol

from nodepool.driver.createpool import CreatePool
from nodepool.driver.installation import ours
from nodepool.driver.instance import InstanceState
from nodepool.launcher.periodic import PeriodicWorker, Session
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import NodeState

MIN_INTERVAL = 0.5
#: threads acting on the nodes of one pass (see Threads)
WORKERS = 8

DELETABLE = frozenset({NodeState.USED, NodeState.IN_USE, NodeState.BUILDING,
                       NodeState.FAILED, NodeState.ABORTED,
                       NodeState.DELETING, NodeState.DELETED})


def needs_lookup(node) -> bool:
    """True when a node's instance may exist unrecorded (crashed launch)."""
    data = node.driver_data
    if not isinstance(data, dict) or "create" not in data:
        return False
    return node.external_id is None or node.state == NodeState.BUILDING


class Daemon(Session, Protocol):
    """What the deleted-node worker uses of its daemon (``Launcher``)."""

    usage: object       # nodepool.launcher.usagebook.UsageBook (claims)

    def provider_managers(self) -> dict: ...   # name -> ProviderManager


class _PassStop:
    """A pass's stop flag: the first handler to trip it says why."""

    def __init__(self):
        self._lock = threading.Lock()
        self.tripped = False

    def trip(self) -> bool:
        """Trip the flag; True for the first caller only."""
        with self._lock:
            first, self.tripped = not self.tripped, True
            return first


class DeletedNodeWorker(PeriodicWorker):
    name = "DeletedNodeWorker"

    def __init__(self, daemon: Daemon, interval: float = 5.0,
                 workers: int = WORKERS):
        # Woken by every node change: scan at most every MIN_INTERVAL.
        super().__init__(daemon, interval, MIN_INTERVAL)
        # Nodes of another driver already warned about (ids are never
        # reused, so the set only grows by such rare nodes).
        self._foreign_seen: set[str] = set()
        self.workers = workers
        self._pool: CreatePool | None = None
        self._pool_lock = threading.Lock()

    def stop(self) -> None:
        super().stop()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)   # queued handlers are cancelled

    def run_once(self) -> None:
        self._act(list(self._work()))

    def _work(self):
        """``(handler, node)`` for each node this pass acts on, from the
        cache, on the pass's own thread."""
        managers = self.daemon.provider_managers()
        interesting = DELETABLE | {NodeState.READY}
        # Locked nodes are skipped below: not even read; nor are nodes
        # a live peer's usage record claims (its own deleter handles
        # them) or that may be a peer's not claimed yet (usagebook.py).
        claims = self.daemon.usage.claims()
        nodes = list(self.zk.iter_nodes(
            cached=True, shared=True, unlocked=True, ids=claims.reads,
            want=lambda n: n.state in interesting
            and (n.state != NodeState.READY or n.allocated_to)))
        for node in nodes:
            if node.provider is not None and node.provider not in managers:
                continue
            manager = managers.get(node.provider)
            if manager is not None and not manager.owns(node):
                self._foreign(node)
                continue
            if node.state in DELETABLE and manager is not None and (
                    manager.is_deleting(node.id)
                    or manager.cloud_backing_off()):
                continue
            if self.zk.is_locked(node):
                continue
            node = node.clone()   # cached records are read-only
            if node.state == NodeState.READY and node.allocated_to:
                yield self._deallocate_orphan, node
            elif node.state in DELETABLE:
                yield functools.partial(self._delete, manager=manager), node

    def _act(self, work: list[tuple[Callable, object]]) -> None:
        """Run each handler on its node: here when there is one, else on
        the pool; back when every one is done (or the pass stopped)."""
        stopping = _PassStop()
        if len(work) <= 1 or self.workers <= 1:
            for handler, node in work:
                self._guarded(handler, node, stopping)
            return
        pool = self._io()
        if pool is None:
            return                      # stopped meanwhile
        futures = []
        for handler, node in work:
            try:
                futures.append(pool.submit(self._guarded, handler, node,
                                           stopping))
            except RuntimeError:        # the pool shut down meanwhile
                break
        for future in futures:
            try:
                future.result()
            except CancelledError:
                pass                    # shutting down

    def _io(self) -> CreatePool | None:
        with self._pool_lock:
            if self._pool is None and not self._stop.is_set():
                self._pool = CreatePool(self.name, self.workers, role="io")
            return self._pool

    def _guarded(self, handler: Callable, node,
                 stopping: "_PassStop") -> None:
        """One node's handler; ZooKeeper trouble stops the pass with one
        warning (``stopping``), any other error is this node's alone."""
        if self._stop.is_set() or stopping.tripped:
            return
        try:
            handler(node)
        except Exception as exc:
            if (self._stop.is_set() or not self.daemon.zk_ready()
                    or zk_errors.is_transient(exc)):
                # Every other node would fail the same way (and at
                # shutdown the connection is closed): one line, and
                # the next pass takes it from here.
                if stopping.trip():
                    self.log.warning("Node pass stopped at node %s: "
                                     "ZooKeeper unavailable (%r)", node.id,
                                     exc)
                return
            self.log.exception("Error handling node %s", node.id)

    def _foreign(self, node) -> None:
        """A node another kind of driver left under a configured provider
        name: kept, record and instance, and said once per node."""
        if node.id in self._foreign_seen:
            return
        self._foreign_seen.add(node.id)
        self.log.warning(
            "Node %s (%s) of provider %s was made by another driver than "
            "the one now configured under that name; it is kept until a "
            "provider of its driver has the name again", node.id,
            node.state, node.provider)

    def _deallocate_orphan(self, node) -> None:
        # Existence only: a lazy cache need not read the request for it.
        if self.zk.request_exists(node.allocated_to, cached=True):
            return
        if self.zk.get_request(node.allocated_to) is not None:
            return
        try:
            self.zk.lock_node(node, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        try:
            if (node.state == NodeState.READY and node.allocated_to
                    and self.zk.get_request(node.allocated_to) is None):
                self.log.info("Deallocating node %s from vanished request %s",
                              node.id, node.allocated_to)
                node.allocated_to = None
                self.zk.store_node(node)
        finally:
            self.zk.unlock_node(node)

    def _delete(self, node, manager) -> None:
        try:
            self.zk.lock_node(node, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        if node.state not in DELETABLE:
            self.zk.unlock_node(node)
            return
        if node.state == NodeState.DELETED or node.provider is None \
                or manager is None:
            self.log.info("Removing znode of node %s", node.id)
            try:
                self.zk.delete_node(node)
            finally:
                self._unlock_quietly(node)
            return
        try:
            extra = self._orphaned_instances(node, manager)
        except Exception:
            self._unlock_quietly(node)
            raise
        if node.state != NodeState.DELETING:
            node.set_state(NodeState.DELETING)
            self.zk.store_node(node)
        self.log.info("Deleting node %s (instance %s)", node.id,
                      node.external_id)
        if extra:
            self.log.info("Node %s: also deleting instance(s) %s found by "
                          "its tag", node.id, extra)
        manager.delete_node(node, extra)

    def _orphaned_instances(self, node, manager) -> list:
        """External ids of instances a cut-short launch may have left."""
        if not needs_lookup(node):
            return []
        known = node.external_id
        known_ids = (set(known.values()) if isinstance(known, dict)
                     else {known})
        adapter = manager.adapter
        return [i.external_id for i in adapter.find_instances(node.id)
                if i.external_id not in known_ids
                and i.state is not InstanceState.DELETED
                and ours(i.metadata, adapter.installation)]

    def _unlock_quietly(self, node) -> None:
        try:
            self.zk.unlock_node(node)
        except Exception:
            pass
