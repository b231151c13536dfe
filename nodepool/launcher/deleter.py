"""The deleted-node worker: removes nodes nobody needs any more.

Thread: ``DeletedNodeWorker`` (one per launcher).  Every ~5 s, and sooner
when the node cache changes, it walks the cached nodes of the providers in
our config (zookeeper.md §9.1):

- READY nodes allocated to a request that no longer exists are deallocated;
- ``used``, ``in-use``, ``building``, ``failed``, ``aborted``, ``deleting``
  and ``deleted`` nodes whose lock it can take are deleted: ``deleting`` is
  written, the provider deletes the instance, then the znode is removed.
  Locks held by others (a requester using an ``in-use`` node, a launcher
  still building) make it skip the node; once the holder is gone the lock
  is free and the node is deleted.

Failure story: a cloud delete error releases the lock and leaves the node
in ``deleting``; the next round retries.  Nodes of providers that are not
in our config are never touched.
"""

from __future__ import annotations

from nodepool.launcher.periodic import PeriodicWorker
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import NodeState

MIN_INTERVAL = 0.5

DELETABLE = frozenset({NodeState.USED, NodeState.IN_USE, NodeState.BUILDING,
                       NodeState.FAILED, NodeState.ABORTED,
                       NodeState.DELETING, NodeState.DELETED})


class DeletedNodeWorker(PeriodicWorker):
    name = "DeletedNodeWorker"

    def __init__(self, launcher, interval: float = 5.0):
        # Woken by every node change: scan at most every MIN_INTERVAL.
        super().__init__(launcher, interval, MIN_INTERVAL)

    def run_once(self) -> None:
        managers = self.launcher.provider_managers()
        interesting = DELETABLE | {NodeState.READY}
        nodes = list(self.zk.iter_nodes(
            cached=True, shared=True,
            want=lambda n: n.state in interesting
            and (n.state != NodeState.READY or n.allocated_to)))
        for node in nodes:
            if self._stop.is_set():
                return
            if node.provider is not None and node.provider not in managers:
                continue
            if self.zk.is_locked(node):
                continue
            node = node.clone()   # cached records are read-only
            try:
                if node.state == NodeState.READY and node.allocated_to:
                    self._deallocate_orphan(node)
                elif node.state in DELETABLE:
                    self._delete(node, managers.get(node.provider))
            except Exception:
                self.log.exception("Error handling node %s", node.id)

    def _deallocate_orphan(self, node) -> None:
        if self.zk.get_request(node.allocated_to, cached=True) is not None:
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
        if manager is not None and manager.is_deleting(node.id):
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
        if node.state != NodeState.DELETING:
            node.set_state(NodeState.DELETING)
            self.zk.store_node(node)
        self.log.info("Deleting node %s (instance %s)", node.id,
                      node.external_id)
        manager.delete_node(node)

    def _unlock_quietly(self, node) -> None:
        try:
            self.zk.unlock_node(node)
        except Exception:
            pass
