"""The cleanup worker: the periodic duties of zookeeper.md §9.1.

Thread: ``CleanupWorker`` (one per launcher), a pass every ~60 s.  Each
duty runs isolated: an exception in one is logged and the others still run.

1. request-lock directories of vanished requests, older than 8 hours;
2. leaked cloud resources (tagged with our provider name, unknown node id),
   deleted only on the second consecutive pass that sees them;
3. lost requests (``pending`` with no lock holder) reset to ``requested``;
   lost ``init`` nodes (unlocked for over a minute: their creator died or
   failed to lock them, and their request may be gone) → ``deleting``;
4. ``max-ready-age``: expired unallocated READY nodes → ``deleting``;
5. held nodes whose hold expired → ``deleting``;
6. empty node znodes removed.
"""

from __future__ import annotations

import time

from nodepool.launcher.periodic import PeriodicWorker
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import NodeState, RequestState

LOCK_DIR_MAX_AGE = 8 * 3600.0
# A launcher locks the init node it creates one round trip later.
INIT_MAX_AGE = 60.0


class CleanupWorker(PeriodicWorker):
    name = "CleanupWorker"

    def __init__(self, launcher, interval: float = 60.0,
                 clock=time.time):
        super().__init__(launcher, interval)
        self.clock = clock
        # (provider, kind, id) seen as leaked on the previous pass
        self._suspects: set[tuple[str, str, str]] = set()

    def run_once(self) -> None:
        for duty in (self.cleanup_request_locks, self.cleanup_leaks,
                     self.cleanup_lost_requests,
                     self.cleanup_lost_init_nodes, self.cleanup_max_ready_age,
                     self.cleanup_held_nodes, self.cleanup_empty_nodes):
            if self._stop.is_set():
                return
            try:
                duty()
            except Exception:
                self.log.exception("Cleanup duty %s failed", duty.__name__)

    # -- 1 -------------------------------------------------------------------
    def cleanup_request_locks(self) -> None:
        now = self.clock()
        for request_id, mtime in self.zk.iter_request_lock_dirs():
            if now - mtime < LOCK_DIR_MAX_AGE:
                continue
            if self.zk.get_request(request_id) is not None:
                continue
            self.log.info("Removing stale request lock %s", request_id)
            self.zk.delete_request_lock_dir(request_id)

    # -- 2 -------------------------------------------------------------------
    def cleanup_leaks(self) -> None:
        known = {n.id for n in self.zk.iter_nodes(cached=False)}
        suspects: set[tuple[str, str, str]] = set()
        for name, manager in self.launcher.provider_managers().items():
            try:
                suspects |= self._provider_leaks(name, manager, known)
            except Exception:
                self.log.exception("Leak cleanup for provider %s failed",
                                   name)
        self._suspects = suspects

    def _provider_leaks(self, name, manager, known) -> set:
        suspects = set()
        adapter = manager.adapter
        for inst in adapter.list_instances():
            if inst.provider_name != name or inst.node_id in known:
                continue
            key = (name, "instances", str(inst.external_id))
            if key in self._suspects:
                self.log.warning("Deleting leaked instance %s of provider %s"
                                 " (node %s unknown)", inst.external_id,
                                 name, inst.node_id)
                manager.delete_instance(inst.external_id, immediate=True)
                self.launcher.stats.leaked(name, "instances")
            else:
                suspects.add(key)
        for res in adapter.list_resources():
            if res.provider_name != name or res.node_id in known:
                continue
            key = (name, res.type, res.id)
            if key in self._suspects:
                self.log.warning("Deleting leaked %s %s of provider %s",
                                 res.type, res.id, name)
                adapter.delete_resource(res)
                self.launcher.stats.leaked(name, res.type)
            else:
                suspects.add(key)
        return suspects

    # -- 3 -------------------------------------------------------------------
    def cleanup_lost_requests(self) -> None:
        for request in self.zk.iter_requests(cached=False):
            if request.state != RequestState.PENDING:
                continue
            if self.zk.is_locked(request):
                continue
            try:
                self.zk.lock_request(request, blocking=False)
            except (zk_errors.LockError, zk_errors.NotFound):
                continue
            try:
                if request.state == RequestState.PENDING:
                    self._reset_lost(request)
            finally:
                self.zk.unlock_request(request)

    def _reset_lost(self, request) -> None:
        self.log.info("Resetting lost request %s", request.id)
        for node in self.zk.iter_nodes(cached=False):
            if node.allocated_to != request.id:
                continue
            try:
                self.zk.lock_node(node, blocking=False)
            except (zk_errors.LockError, zk_errors.NotFound):
                continue
            try:
                if node.state == NodeState.INIT:
                    node.set_state(NodeState.DELETING)
                node.allocated_to = None
                self.zk.store_node(node)
            finally:
                self.zk.unlock_node(node)
        request.nodes = []
        request.set_state(RequestState.REQUESTED)
        self.zk.store_request(request)

    def cleanup_lost_init_nodes(self) -> None:
        managers = self.launcher.provider_managers()
        now = self.clock()
        for node in self.zk.iter_nodes(cached=True):
            if (node.state != NodeState.INIT
                    or node.provider not in managers
                    or now - (node.state_time or now) < INIT_MAX_AGE
                    or self.zk.is_locked(node)):
                continue
            self._mark_deleting(node, "lost init node",
                                lambda n: n.state == NodeState.INIT)

    # -- 4 and 5 ---------------------------------------------------------------
    def cleanup_max_ready_age(self) -> None:
        labels = self.launcher.config.labels
        managers = self.launcher.provider_managers()
        now = self.clock()
        for node in self.zk.iter_nodes(cached=True):
            if (node.state != NodeState.READY or node.allocated_to
                    or node.provider not in managers):
                continue
            ages = [labels[t].max_ready_age for t in (node.type or [])
                    if t in labels and labels[t].max_ready_age > 0]
            if not ages or now - (node.state_time or now) < min(ages):
                continue
            self._mark_deleting(node, "max-ready-age exceeded",
                                lambda n: n.state == NodeState.READY
                                and not n.allocated_to)

    def cleanup_held_nodes(self) -> None:
        max_hold_age = self.launcher.config.max_hold_age
        now = self.clock()
        for node in self.zk.iter_nodes(cached=True):
            if node.state != NodeState.HOLD:
                continue
            limits = [x for x in (node.hold_expiration or 0, max_hold_age)
                      if x and x > 0]
            if not limits or now - (node.state_time or now) < min(limits):
                continue
            self._mark_deleting(node, "hold expired",
                                lambda n: n.state == NodeState.HOLD)

    def _mark_deleting(self, node, why: str, still_true) -> None:
        try:
            self.zk.lock_node(node, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        try:
            if still_true(node):
                self.log.info("Deleting node %s: %s", node.id, why)
                node.set_state(NodeState.DELETING)
                self.zk.store_node(node)
        finally:
            self.zk.unlock_node(node)

    # -- 6 -------------------------------------------------------------------
    def cleanup_empty_nodes(self) -> None:
        for node_id in self.zk.delete_empty_node_znodes():
            self.log.info("Removed empty node znode %s", node_id)
