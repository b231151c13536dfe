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

Threads: one, ``DeletedNodeWorker`` (a ``PeriodicWorker``), runs every
pass; the launcher's cache listener (``Launcher._zk_changed``, on the
thread that applied a cache change, often kazoo's connection thread) only
sets its wake event, and passes start at least ``MIN_INTERVAL`` apart.
The pass makes its ZooKeeper calls (lock attempts that never wait for a
holder, node writes, znode removals) and the adapter's ``find_instances``
cloud call on this thread, which nothing else waits for; the instance
deletes are handed to the provider's loop thread
(``ProviderManager.delete_node`` only appends under the manager's
``_lock`` and wakes it), and nodes that loop is deleting are skipped
(``is_deleting``).  ``_foreign_seen`` is this thread's alone.

Failure story: a cloud delete error releases the lock and leaves the node
in ``deleting``; the next round retries.  While a provider backs off after
a credential or endpoint error (``ProviderManager.cloud_backing_off``) its
nodes are not touched at all: the first pass after the back-off sends
their deletes again, so they follow the provider's exponential back-off
instead of one attempt per pass.  ZooKeeper trouble (or the
connection closing at shutdown) ends the pass with one warning instead of
an error per remaining node.  A failed lookup releases the lock
and leaves the node as it was.  Nodes of providers that are not
in our config are never touched (as upstream: they wait for their provider
to return), and neither are nodes that another kind of driver left under a
configured provider's name (``ProviderManager.owns``): deleting them through
the configured driver would drop their records while their instances kept
running.
"""

from __future__ import annotations

from typing import Protocol

from nodepool.driver.installation import ours
from nodepool.driver.instance import InstanceState
from nodepool.launcher.periodic import PeriodicWorker, Session
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import NodeState

MIN_INTERVAL = 0.5

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


class DeletedNodeWorker(PeriodicWorker):
    name = "DeletedNodeWorker"

    def __init__(self, daemon: Daemon, interval: float = 5.0):
        # Woken by every node change: scan at most every MIN_INTERVAL.
        super().__init__(daemon, interval, MIN_INTERVAL)
        # Nodes of another driver already warned about (ids are never
        # reused, so the set only grows by such rare nodes).
        self._foreign_seen: set[str] = set()

    def run_once(self) -> None:
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
            if self._stop.is_set():
                return
            if node.provider is not None and node.provider not in managers:
                continue
            manager = managers.get(node.provider)
            if manager is not None and not manager.owns(node):
                self._foreign(node)
                continue
            if self.zk.is_locked(node):
                continue
            node = node.clone()   # cached records are read-only
            try:
                if node.state == NodeState.READY and node.allocated_to:
                    self._deallocate_orphan(node)
                elif node.state in DELETABLE:
                    self._delete(node, manager)
            except Exception as exc:
                if (self._stop.is_set() or not self.daemon.zk_ready()
                        or zk_errors.is_transient(exc)):
                    # Every other node would fail the same way (and at
                    # shutdown the connection is closed): one line, and
                    # the next pass takes it from here.
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
        if manager is not None and (manager.is_deleting(node.id)
                                    or manager.cloud_backing_off()):
            return
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
