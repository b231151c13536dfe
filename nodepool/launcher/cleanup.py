"""The cleanup worker: the periodic duties of zookeeper.md §9.1.

Thread: ``CleanupWorker`` (one per launcher): the full pass below every
~60 s, and two cheap duties every second (cache reads only, unless there is
something to do):

- lost requests soon after they are lost: when a pool component vanishes
  from the cache (a launcher's session ended: its locks went with it), when
  our own session was replaced, and for a short while after the worker
  starts, the ``pending`` requests that our own workers do not hold are
  checked for a lock holder (one uncached read each) for ``LOST_WINDOW``
  seconds, and those nobody holds on two checks in a row (so the node
  cache shows every node allocated to them) are reset as in duty 3 (up to
  ``RESET_THREADS`` at once, on short-lived ``CleanupWorker-reset_N``
  threads);
- ``init`` nodes whose create reply was lost (the creator never learned
  their id, so never locked them): unlocked ``init`` nodes of our own pool
  workers that no handler of ours owns, or of a pool worker that is no
  longer registered, older than ``ORPHAN_INIT_AGE`` → ``deleting``.

Each duty runs isolated: an exception in one is logged and the others still
run.  Duties that change nodes act only on nodes of configured providers
that the provider's driver made (``ProviderManager.owns``).  The full pass:

1. request-lock directories of vanished requests, older than 8 hours;
2. leaked cloud resources, by upstream Nodepool's rule (``leaked_by``): an
   instance or resource tagged with our provider name is leaked when its
   ``nodepool_node_id`` names no node of that provider, or its
   ``nodepool_build_id``/``nodepool_upload_id`` no upload record of that
   provider; one carrying neither tag is never ours to delete (a builder's
   upload in progress, a resource an operator made).  One tagged with
   another installation's id (``nodepool_installation``: another ZooKeeper
   sharing the account and the provider name, whose node ids collide with
   ours) is never ours either; one with no installation tag (upstream's,
   or ours from before installations were tagged) follows the rule.  A
   node znode that cannot be read (quarantined) counts as a node of every
   provider, so its instance is kept while the znode exists.  A leak is
   deleted only on the second consecutive pass that sees it.  A provider
   backing off after a credential or endpoint error is skipped (its gate
   logged why) and keeps its suspects for the next pass;
3. lost requests (``pending`` with no lock holder) reset to ``requested``;
   lost ``init`` nodes (unlocked for over a minute: their creator died or
   failed to lock them, and their request may be gone) → ``deleting``;
4. ``max-ready-age``: expired unallocated READY nodes → ``deleting``;
5. held nodes whose hold expired → ``deleting``;
6. empty node znodes removed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol

from nodepool.driver import errors
from nodepool.driver.installation import foreign
from nodepool.launcher.periodic import PeriodicWorker, Session
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import NodeState, RequestState

LOCK_DIR_MAX_AGE = 8 * 3600.0
# A launcher locks the init node it creates one round trip later.
INIT_MAX_AGE = 60.0
# The fast duties' period.
FAST_INTERVAL = 1.0
# After a trigger, pending requests are checked for a lock holder for this
# long (the dead session's locks vanish with its components, but caches of
# the two may be a moment apart).
LOST_WINDOW = 10.0
# An init node of ours (or of a vanished pool worker) unlocked for this long
# was lost by its creator: the creator's lock attempt (handler.py,
# NEW_NODE_LOCK_TIMEOUT = 10 s) has ended by then.
ORPHAN_INIT_AGE = 20.0
# Request lock directories asked for their age per full pass at most: a
# launcher that starts next to a day of requests asks a few thousand over
# its first passes instead of all in the first (a burst of round trips).
LOCK_DIR_ASKS = 200
# Lost requests are reset this many at a time (each reset is a dozen
# ZooKeeper round trips; a dead launcher may leave a hundred).
RESET_THREADS = 8


class Known(NamedTuple):
    """What ZooKeeper knows of one provider, read once per leak pass."""
    nodes: set[str]      # node ids whose ``provider`` is this provider
    uploads: set[str]    # "<build id>-<upload id>" of its upload records


def leaked_by(metadata, provider: str, known: Known,
              installation: str | None = None) -> str | None:
    """Why a cloud object tagged ``metadata`` is a leak of ``provider`` in
    ``installation``, or None when it is not (upstream Nodepool 11's rule,
    so either launcher reaps the other's leaks and neither touches what
    the other still tracks; another installation's objects are never
    ours)."""
    if metadata.get("nodepool_provider_name") != provider:
        return None
    if foreign(metadata, installation):
        return None
    node_id = metadata.get("nodepool_node_id")
    if node_id and node_id not in known.nodes:
        return f"node {node_id} unknown"
    upload_id = metadata.get("nodepool_upload_id")
    if upload_id:
        key = f"{metadata.get('nodepool_build_id')}-{upload_id}"
        if key not in known.uploads:
            return f"upload {key} unknown"
    return None


class Daemon(Session, Protocol):
    """What the cleanup worker uses of its daemon (``Launcher``)."""

    stats: object       # nodepool.stats client (``leaked``)
    config: object      # ``labels``, ``max_hold_age``
    usage: object       # nodepool.launcher.usagebook.UsageBook (claims)

    def provider_managers(self) -> dict: ...   # name -> ProviderManager

    def pool_workers(self) -> dict: ...        # ``id``, ``held()``

    def pool_components(self, fresh: bool = False) -> list: ...


class CleanupWorker(PeriodicWorker):
    name = "CleanupWorker"

    def __init__(self, daemon: Daemon, interval: float = 60.0,
                 clock=time.time):
        super().__init__(daemon, interval)
        self.clock = clock
        # (provider, kind, id) seen as leaked on the previous pass
        self._suspects: set[tuple[str, str, str]] = set()
        # Fast lost-request check: on until this monotonic time.
        self._lost_until = time.monotonic() + LOST_WINDOW
        self._components: set[str] | None = None
        # Request lock directories: id -> their mtime or a lower bound of
        # it (one listed first after our previous listing is at most that
        # old; None: not asked yet), so that each is asked for its age
        # about once, not every pass; and when that listing was taken
        # (None: not yet).
        self._lock_dirs: dict[str, float | None] = {}
        self._lock_dirs_listed: float | None = None
        # Pending requests seen without a lock holder on the last check.
        self._unheld: set[str] = set()
        self._trigger = threading.Event()
        if self.zk is not None:
            self.zk.add_session_listener(self._session_replaced)

    def _session_replaced(self) -> None:
        # Our handlers let go of their requests when the session was lost.
        self._trigger.set()
        self.wake()

    def _run(self) -> None:
        next_full = time.monotonic() + self.interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, min(FAST_INTERVAL,
                                         next_full - time.monotonic())))
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.daemon.zk_ready():
                continue
            self.run_fast()
            if time.monotonic() >= next_full:
                self.run_once()
                next_full = time.monotonic() + self.interval

    def _run_duties(self, duties) -> None:
        for duty in duties:
            if self._stop.is_set():
                return
            try:
                duty()
            except Exception:
                self.log.exception("Cleanup duty %s failed", duty.__name__)

    def run_once(self) -> None:
        self._run_duties((self.cleanup_request_locks, self.cleanup_leaks,
                          self.cleanup_lost_requests,
                          self.cleanup_lost_init_nodes,
                          self.cleanup_max_ready_age,
                          self.cleanup_held_nodes, self.cleanup_empty_nodes))

    def run_fast(self) -> None:
        self._run_duties((self.recover_lost_requests,
                          self.cleanup_orphan_init_nodes))

    # -- fast duties -------------------------------------------------------
    def _held(self) -> tuple[set[str], set[str]]:
        """(request ids, node ids) our own pool workers hold."""
        requests: set[str] = set()
        nodes: set[str] = set()
        for worker in self.daemon.pool_workers().values():
            r, n = worker.held()
            requests |= r
            nodes |= n
        return requests, nodes

    def _registered(self) -> set[str]:
        return {c.id for c in self.daemon.pool_components()}

    def recover_lost_requests(self) -> None:
        """Reset lost requests soon after their holder's session ended."""
        now = time.monotonic()
        registered = self._registered()
        if self._components is not None and self._components - registered:
            self._lost_until = now + LOST_WINDOW
        self._components = registered
        if self._trigger.is_set():
            self._trigger.clear()
            self._lost_until = now + LOST_WINDOW
        if now > self._lost_until:
            self._unheld = set()
            return
        held, _ = self._held()
        pending = self.zk.iter_requests(
            cached=True, shared=True,
            want=lambda r: r.state == RequestState.PENDING
            and r.id not in held)
        unheld = {r.id for r in pending if not self.zk.is_locked(r)}
        lost = [r.clone() for r in pending
                if r.id in unheld and r.id in self._unheld]
        self._unheld = unheld - {r.id for r in lost}
        if lost:
            self._reset_all(lost, self._allocations())

    def cleanup_orphan_init_nodes(self) -> None:
        """``init`` nodes whose creator lost the create's reply (or died)."""
        managers = self.daemon.provider_managers()
        now = self.clock()
        # Locked nodes are skipped below: not even read; nor are those a
        # live peer's usage record claims (its own cleanup's) or young
        # ones no record claims yet (not old enough to be orphans).
        claims = self.daemon.usage.claims()
        candidates = list(self.zk.iter_nodes(
            cached=True, shared=True, unlocked=True, ids=claims.reads,
            want=lambda n: n.state == NodeState.INIT
            and n.provider in managers and managers[n.provider].owns(n)
            and n.launcher is not None
            and now - (n.state_time or now) >= ORPHAN_INIT_AGE))
        if not candidates:
            return
        ours = {w.id for w in self.daemon.pool_workers().values()}
        registered = self._registered() | ours
        _, held = self._held()
        for node in candidates:
            if node.id in held or self.zk.is_locked(node):
                continue
            if node.launcher in registered and node.launcher not in ours:
                continue    # another live launcher's: its own cleanup
            self._mark_deleting(node.clone(), "init node lost by its "
                                "creator", lambda n: n.state == NodeState.INIT)

    # -- 1 -------------------------------------------------------------------
    def cleanup_request_locks(self) -> None:
        """Remove the lock directories of requests that are gone: an empty
        one (no lock contender) at once, any other once it is older than
        ``LOCK_DIR_MAX_AGE``, as upstream removes them all.

        Every finished request leaves its directory behind (a lock's
        release removes only its child): kept for eight hours, they were
        as many as the requests of the last eight hours, 576000 at 20 a
        second -- in ZooKeeper, in each pass's listing and in this
        worker's table of ages.  Removing an empty directory is safe
        without a wait: ZooKeeper refuses to delete a znode with children,
        so a lock held or being taken keeps its directory, and a lock
        taken later makes it again.  Whether a request is gone is asked
        of the cache only (without one, every directory takes the
        eight-hour rule).

        A directory is asked for its mtime only once it
        may be old enough: one that appeared since our previous listing is
        younger than that listing (there are as many directories as
        requests of the last hours; asking each for its age every pass
        cost one round trip per directory per pass and launcher).  At most
        ``LOCK_DIR_ASKS`` are asked per pass; the others stay unknown
        (None) and are asked on the next passes."""
        now = self.clock()
        names = self.zk.request_lock_dir_ids()
        removed = self.zk.delete_empty_request_lock_dirs(
            [r for r in names if not self.zk.request_may_exist(r)])
        if removed:
            self.log.debug("Removed %d empty lock directories of requests "
                           "that are gone", len(removed))
            names = [r for r in names if r not in removed]
        since, self._lock_dirs_listed = self._lock_dirs_listed, now
        known: dict[str, float | None] = {}
        asks = 0
        for request_id in names:
            bound = self._lock_dirs.get(request_id, since)
            if bound is None or now - bound >= LOCK_DIR_MAX_AGE:
                if asks >= LOCK_DIR_ASKS:
                    known[request_id] = None     # asked on a later pass
                    continue
                asks += 1
                bound = self.zk.request_lock_dir_mtime(request_id)
                if bound is None:
                    continue          # removed meanwhile
            known[request_id] = bound
        self._lock_dirs = known
        for request_id, mtime in known.items():
            if mtime is None or now - mtime < LOCK_DIR_MAX_AGE:
                continue
            if self.zk.get_request(request_id) is not None:
                continue
            self.log.info("Removing stale request lock %s", request_id)
            self.zk.delete_request_lock_dir(request_id)

    # -- 2 -------------------------------------------------------------------
    def cleanup_leaks(self) -> None:
        # Which node ids exist, and of which provider: what a node never
        # changes, so any version the cache read will do (each node is
        # read about once, not on every pass).  A node created after this
        # walk is missing from it: its instance is only a suspect, and a
        # suspect is deleted on the next pass only if still unknown then.
        unreadable: list = []
        nodes = list(self.zk.iter_nodes(cached=True, shared=True,
                                        current=False, rejects=unreadable))
        # A node znode we cannot read may well be this provider's: its
        # instance is not a leak while the znode is there.
        quarantined = {entry.name for entry in unreadable}
        uploads = self.zk.known_upload_keys()
        suspects: set[tuple[str, str, str]] = set()
        for name, manager in self.daemon.provider_managers().items():
            if manager.cloud_backing_off():
                # Its gate logged why; the suspects of the last pass wait.
                suspects |= {s for s in self._suspects if s[0] == name}
                continue
            try:
                known = Known({n.id for n in nodes if n.provider == name}
                              | quarantined, uploads.get(name, set()))
                suspects |= self._provider_leaks(name, manager, known)
            except errors.AccessError as e:
                suspects |= {s for s in self._suspects if s[0] == name}
                self.log.debug("Leak cleanup for provider %s: %s", name, e)
            except Exception:
                self.log.exception("Leak cleanup for provider %s failed",
                                   name)
        self._suspects = suspects

    def _provider_leaks(self, name, manager, known: "Known") -> set:
        suspects = set()
        adapter = manager.adapter
        installation = adapter.installation
        for inst in adapter.list_instances():
            why = leaked_by(inst.metadata, name, known, installation)
            if why is None:
                continue
            key = (name, "instances", str(inst.external_id))
            if key in self._suspects:
                self.log.warning("Deleting leaked instance %s of provider %s"
                                 " (%s)", inst.external_id, name, why)
                manager.delete_instance(inst.external_id, immediate=True)
                self.daemon.stats.leaked(name, "instances")
            else:
                suspects.add(key)
        for res in adapter.list_resources():
            why = leaked_by(res.metadata, name, known, installation)
            if why is None and res.orphan and \
                    res.metadata.get("nodepool_provider_name") == name and \
                    not foreign(res.metadata, installation):
                why = res.orphan
            if why is None:
                continue
            key = (name, res.type, res.id)
            if key in self._suspects:
                self.log.warning("Deleting leaked %s %s of provider %s (%s)",
                                 res.type, res.id, name, why)
                adapter.delete_resource(res)
                self.daemon.stats.leaked(name, res.type)
            else:
                suspects.add(key)
        return suspects

    # -- 3 -------------------------------------------------------------------
    def cleanup_lost_requests(self) -> None:
        # The cache's pending requests (a lazy cache reads only those that
        # changed since it last read them); a reset re-checks under the
        # request's lock.
        requests = [r for r in self.zk.iter_requests(
            cached=True, want=lambda r: r.state == RequestState.PENDING)
            if not self.zk.is_locked(r)]
        if requests:
            self._reset_all(requests, self._allocations(cached=False))

    def _reset_all(self, requests, by_request) -> None:
        """Reset those of the ``pending`` ``requests`` nobody holds."""
        if not requests:
            return

        def one(request) -> None:
            if self._stop.is_set():
                return
            try:
                if not self.zk.is_locked(request):
                    self._reset_if_lost(request, by_request)
            except Exception:
                self.log.exception("Could not reset lost request %s",
                                   request.id)
        if len(requests) == 1:
            one(requests[0])
            return
        with ThreadPoolExecutor(min(RESET_THREADS, len(requests)),
                                thread_name_prefix="CleanupWorker-reset"
                                ) as pool:
            list(pool.map(one, requests))

    def _allocations(self, cached: bool = True) -> dict[str, list]:
        """request id → nodes allocated to it (re-read when locked)."""
        out: dict[str, list] = {}
        for node in self.zk.iter_nodes(cached=cached, shared=cached,
                                       want=lambda n: bool(n.allocated_to)):
            out.setdefault(node.allocated_to, []).append(node)
        return out

    def _reset_if_lost(self, request, by_request) -> None:
        try:
            self.zk.lock_request(request, blocking=False)
        except (zk_errors.LockError, zk_errors.NotFound):
            return
        try:
            if request.state == RequestState.PENDING:
                self._reset_lost(request, by_request.get(request.id, []))
        finally:
            self.zk.unlock_request(request)

    def _reset_lost(self, request, nodes) -> None:
        self.log.info("Resetting lost request %s", request.id)
        for node in nodes:
            node = node.clone()
            try:
                self.zk.lock_node(node, blocking=False)   # re-reads it
            except (zk_errors.LockError, zk_errors.NotFound):
                continue
            try:
                if node.allocated_to != request.id:
                    continue
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
        managers = self.daemon.provider_managers()
        now = self.clock()
        for node in self.zk.iter_nodes(cached=True):
            if (node.state != NodeState.INIT
                    or node.provider not in managers
                    or not managers[node.provider].owns(node)
                    or now - (node.state_time or now) < INIT_MAX_AGE
                    or self.zk.is_locked(node)):
                continue
            self._mark_deleting(node, "lost init node",
                                lambda n: n.state == NodeState.INIT)

    # -- 4 and 5 ---------------------------------------------------------------
    def cleanup_max_ready_age(self) -> None:
        labels = self.daemon.config.labels
        managers = self.daemon.provider_managers()
        now = self.clock()
        for node in self.zk.iter_nodes(cached=True):
            if (node.state != NodeState.READY or node.allocated_to
                    or node.provider not in managers
                    or not managers[node.provider].owns(node)):
                continue
            ages = [labels[t].max_ready_age for t in (node.type or [])
                    if t in labels and labels[t].max_ready_age > 0]
            if not ages or now - (node.state_time or now) < min(ages):
                continue
            self._mark_deleting(node, "max-ready-age exceeded",
                                lambda n: n.state == NodeState.READY
                                and not n.allocated_to)

    def cleanup_held_nodes(self) -> None:
        max_hold_age = self.daemon.config.max_hold_age
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
