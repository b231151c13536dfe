"""Serve one accepted node request: reuse or launch its nodes, then fulfil.

A ``RequestHandler`` belongs to one pool worker.  The worker's thread calls
the cheap ``check()``; the actions it returns (and ``accept``/``fill``) do
ZooKeeper writes on the worker's I/O threads, one at a time per handler
(``run`` is how the worker runs each of them).  It holds the request lock
from acceptance until it fulfils, declines or gives the request up, and
holds the lock of every node it launches until then.

What a handler needs, and why only that:
- ``RequestStore`` (below): the dozen ZooKeeper calls it makes on its
  request and its nodes -- the real one is ``nodepool.zk.ZooKeeper``;
- ``Allocator`` (below): the pool's spares of a label, whether a label's
  offering is unavailable, a quota reservation for one node (commit /
  release) and the "reclaim a ready node at quota" step, the pool's zones,
  a new node record with the pool's fields, and the hand-over of a launch
  -- the real one is ``nodepool.launcher.allocator.PoolAllocator``;
- ``decline(request, reason)``: the pool's rule for declining (append its
  id to ``declined_by``, fail once every pool did);
- a monotonic ``clock`` (waiting at quota, retry delays) and ``choose``
  (the zone of a node set).
These protocols (with ``Launch`` and ``Verdict``, what the allocator
answers) are declared here, on the handler's side, so the handler imports
neither the pool worker (which imports it) nor the provider manager, and a
unit test drives it with small fakes of exactly these.

Failure story (zookeeper.md §8.3/§8.4):
- a node that FAILED: once every launch has finished, the other nodes are
  deallocated and unlocked and the request is declined;
- a node ABORTED by a cloud quota error is dropped and replaced after a
  pause (never declined for that); when its offering is marked unavailable
  (a capacity error, ``nodepool.driver.offerings``) the request is given
  back instead (``give_back``: ``requested`` again, not declined), so
  another pool serves it or it waits until the offering is retried;
- the request znode vanished: every node is deallocated and unlocked, the
  handler ends without writing the request;
- ZooKeeper trouble (``zk_errors.is_transient``: ConnectionLoss, a timed-out
  operation, ...) never declines: ``run`` calls ``retry_later`` and the
  failed action runs again on a later pass.  Every action is therefore
  idempotent: a request write that may have landed is simply written again
  (conditional writes merge onto the newer version); a node we locked but
  could not write is kept and written again (``_unsaved``); a node create
  whose reply was lost leaves an unlocked ``init`` node that no handler owns,
  which the cleanup worker removes (``cleanup_own_init_nodes``);
- the session (and with it every lock) was lost: ``done`` is set by the pool
  worker and the handler lets go without writing anything (``_live``); the
  cleanup worker of any launcher resets the request;
- any other exception while handling declines the request (``fail``); if
  even that cannot be written for a non-transient reason the request lock is
  released, so the request is a lost request the cleanup worker resets.

Threads: a handler has no thread of its own.  Its state is changed by one
action at a time (the worker marks it ``busy`` while one runs on an I/O
thread); ``check()`` runs on the worker's thread between actions, and
``done`` may be set by the worker's thread at any time (session lost).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Collection, Protocol

from nodepool.driver.statemachine import RequestInfo
from nodepool.launcher import tracing
from nodepool.launcher.nodelaunch import Outcome, record_intent
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeRequest, NodeState, RequestState

# After ZooKeeper trouble an action runs again after this many seconds per
# failure so far (at most RETRY_MAX_DELAY): reconnecting takes a moment.
RETRY_DELAY = 0.2
RETRY_MAX_DELAY = 2.0
# How long the lock of a node we just created may take (nobody else locks
# a fresh init node, so failing means connection trouble).
NEW_NODE_LOCK_TIMEOUT = 10.0


class HandlerDone(Exception):
    """The handler let go of its request (session lost): write nothing."""


class Launch(Protocol):
    """A launch in progress (``nodepool.launcher.nodelaunch``)."""

    outcome: object     # an ``Outcome`` (RUNNING until it finished)
    settled: bool       # finished, and the provider loop let go of it

    def detach(self) -> bool:
        """Let the node go; True while the launch still runs."""


class Verdict(Protocol):
    """``nodepool.launcher.quota.Verdict``: truthy when it fits."""

    reservation: object | None

    def __bool__(self) -> bool: ...

    def describe(self) -> str: ...


class Allocator(Protocol):
    """What a handler needs from its pool (see the module docstring)."""

    launches_nodes: bool          # False: only existing nodes (static)
    installation: str | None      # recorded in each create intent

    def spares(self, label_name: str) -> list[Node]:
        """READY unallocated nodes of the pool (read-only records)."""

    def lock_spare(self, node: Node) -> Node | None:
        """A locked copy of a spare still free once locked, or None; the
        handler owns the lock (its store's ``unlock_node``)."""

    def unavailable(self, label_name: str) -> str | None:
        """Why the label's offering cannot launch now, or None."""

    def reserve(self, label_name: str) -> Verdict:
        """Claim quota for one node; a falsy verdict names the limit."""

    def commit(self, reservation, node: Node) -> None: ...

    def release(self, reservation) -> None: ...

    def reclaim_ready_node(self) -> None:
        """At quota: delete the pool's oldest unused ready node."""

    def zones(self) -> Collection[str]: ...

    def new_node(self, label_name: str) -> tuple[Node, str | None]:
        """An unsaved INIT node with the pool's fields, and the cloud
        image id to launch it from."""

    def launch(self, node: Node, label_name: str, info: RequestInfo,
               image_external_id: str | None) -> Launch: ...


class RequestStore(Protocol):
    """The ZooKeeper calls of a handler (``nodepool.zk.ZooKeeper``)."""

    def request_exists(self, request_id: str, cached: bool = True
                       ) -> bool: ...

    def store_request(self, request: NodeRequest) -> None: ...

    def finish_request(self, request: NodeRequest, nodes) -> bool: ...

    def unlock_request(self, request: NodeRequest) -> None: ...

    def lock_new_node(self, node: Node, timeout: float) -> None: ...

    def unlock_node(self, node: Node) -> None: ...

    def store_node(self, node: Node) -> None: ...


class RequestHandler:
    """One accepted request (see the module docstring).  Usage::

        handler = RequestHandler(request, zk, allocator, worker.decline)
        handler.run(lambda: handler.accept(written=True))
        ...                         # then, on every pass
        if handler.paused:
            handler.run(handler.fill)
        action = handler.check()
        if action is not None:
            handler.run(action)     # on an I/O thread, one at a time
    """

    def __init__(self, request: NodeRequest, zk: RequestStore,
                 allocator: Allocator,
                 decline: Callable[[NodeRequest, str], None],
                 clock: Callable[[], float] = time.monotonic,
                 choose: Callable = random.choice, trace=tracing.NULL):
        self.zk = zk
        self.trace = trace    # the request's span (nodepool.launcher.tracing)
        self.allocator = allocator
        self._decline = decline
        self.clock = clock
        self._choose = choose
        self.request = request
        self.log = logging.LoggerAdapter(
            logging.getLogger("nodepool.launcher.request"),
            {"request": request.id, "event": request.event_id})
        self.nodes: list[Node | None] = [None] * len(request.node_types)
        self.launchers: dict[str, Launch] = {}
        self.paused = False
        # monotonic time since which the request waits at quota (None: it
        # does not); the pool worker's starvation bound is measured from it.
        self.waiting_since: float | None = None
        # The quota verdict it waits on (names the limit and what is free).
        self.verdict: Verdict | None = None
        self.done = False
        self.busy = False     # an action or fill runs on an I/O thread
        self.accepted = False  # our ``pending`` write is known to have landed
        # After ZooKeeper trouble: the action to run again, not before
        # retry_at (monotonic).
        self.retry: Callable[[], None] | None = None
        self.retry_at = 0.0
        self.failures = 0
        # Nodes we hold locked whose allocation write failed (ZooKeeper
        # trouble): written again before anything else.
        self._unsaved: list[Node] = []
        self.az: str | None = None
        self.info = RequestInfo(
            id=request.id, labels=tuple(request.node_types),
            requestor=request.requestor,
            requestor_data=request.requestor_data,
            relative_priority=request.relative_priority or 0,
            event_id=request.event_id, created_time=request.created_time,
            tenant_name=request.tenant_name)

    @property
    def is_min_ready(self) -> bool:
        return self.request.requestor == "NodePool:min-ready"

    def node_ids(self) -> set[str]:
        """Ids of the nodes this handler holds or is launching."""
        ids = {n.id for n in self.nodes if n is not None}
        ids.update(self.launchers)
        return ids

    def _live(self) -> None:
        """Raise before a write once the handler has let go."""
        if self.done:
            raise HandlerDone(f"request {self.request.id} was let go")

    def retry_later(self, action: Callable[[], None], exc: BaseException
                    ) -> None:
        """ZooKeeper trouble in ``action``: run it again on a later pass."""
        self.failures += 1
        self.retry = action
        self.retry_at = self.clock() + min(
            RETRY_MAX_DELAY, RETRY_DELAY * self.failures)
        self.log.warning("ZooKeeper trouble while handling request %s (%s);"
                         " will retry", self.request.id, exc)

    def run(self, action: Callable[[], None],
            connected: Callable[[], bool] = lambda: True) -> None:
        """Run one action (``accept``, ``fill`` or what ``check`` gave).

        ZooKeeper trouble -- a transient error, or any error while not
        ``connected()`` -- schedules it again (``retry_later``); any other
        error declines the request (``fail``); after the handler let go,
        nothing happens.
        """
        if self.done:
            return
        try:
            action()
        except Exception as exc:
            if self.done:
                return      # let go (session lost): nothing to write
            if zk_errors.is_transient(exc) or not connected():
                self.retry_later(action, exc)
                return
            self.log.exception("Error handling request %s", self.request.id)
            self.fail("an error occurred while handling it")

    # -- entry points used by the pool worker -----------------------------
    def accept(self, written: bool = False) -> None:
        """Mark the request ``pending`` (``written``: the pool worker
        already did, in the transaction that took the lock), then fill."""
        if not self.accepted:
            if not written:
                self._live()
                self.request.set_state(RequestState.PENDING)
                self.zk.store_request(self.request)
            self.accepted = True
            self.log.info("Accepted request %s for %s", self.request.id,
                          self.request.node_types)
        self.fill()

    def fill(self) -> None:
        """Reuse or launch a node for every empty slot; pause at quota."""
        self._save_unsaved()
        self.paused = False
        for index, label_name in enumerate(self.request.node_types):
            if self.nodes[index] is not None:
                continue
            node = self._reuse(label_name)
            if node is None:
                node = self._launch(label_name)
                if node is None:
                    return  # paused (or declined for min-ready)
            self.nodes[index] = node
        self.waiting_since = None
        self.verdict = None

    def _wait_at_quota(self, verdict: Verdict | None = None) -> None:
        self.paused = True
        if verdict is not None and (self.verdict is None or
                                    verdict.describe()
                                    != self.verdict.describe()):
            self.log.info("Request %s waits at quota: %s", self.request.id,
                          verdict.describe())
        self.verdict = verdict if verdict is not None else self.verdict
        if self.waiting_since is None:
            self.waiting_since = self.clock()

    def check(self):
        """What to do next, or None to keep waiting.

        Cheap (cache reads only): called by the pool worker's thread each
        pass.  The returned action does ZooKeeper writes and is run on the
        worker's I/O threads, never concurrently with another action or
        ``fill`` of this handler (the worker marks the handler ``busy``).
        """
        if self.done:
            return None
        if not self.zk.request_exists(self.request.id):
            return self._vanished
        if self.retry is not None:
            if self.clock() < self.retry_at:
                return None
            action, self.retry = self.retry, None
            return action
        if any(self._aborted()):
            return self._drop_aborted
        if self.paused or any(n is None for n in self.nodes):
            return None
        # settled, not just done: between the two the provider loop may
        # still act on a detached node (see NodeLaunch.finished).
        if any(not launcher.settled for launcher in self.launchers.values()):
            return None
        if any(n.state != NodeState.READY for n in self.nodes):
            return lambda: self.decline("a node failed to launch")
        return self._fulfil

    def _vanished(self) -> None:
        if self.zk.request_exists(self.request.id, cached=False):
            return   # the cache was behind
        self._live()
        self.log.info("Request %s vanished while being handled",
                      self.request.id)
        self._release_all(deallocate=True)
        self._finish()

    # -- node allocation -----------------------------------------------------
    def _reuse(self, label_name: str) -> Node | None:
        if not self.request.reuse and self.allocator.launches_nodes:
            return None
        for node in self.allocator.spares(label_name):
            if node.allocated_to or (self.az and node.az != self.az):
                continue
            self._live()
            node = self.allocator.lock_spare(node)
            if node is None:
                continue
            node.allocated_to = self.request.id
            node.tenant_name = self.request.tenant_name
            node.requestor = self.request.requestor
            self.az = self.az or node.az
            try:
                self.zk.store_node(node)
            except Exception as exc:
                if not zk_errors.is_transient(exc):
                    self._unlock(node)
                    raise
                # Written or not: we hold its lock, so it stays ours and
                # is written again (fill's _save_unsaved) before anything
                # else happens to this request.
                self._unsaved.append(node)
                self.log.info("Reusing ready node %s (allocation to be "
                              "written again)", node.id)
                return node
            self.log.info("Reusing ready node %s", node.id)
            return node
        return None

    def _save_unsaved(self) -> None:
        while self._unsaved:
            node = self._unsaved[0]
            self._live()
            self.zk.store_node(node)
            self._unsaved.pop(0)

    def _launch(self, label_name: str) -> Node | None:
        allocator = self.allocator
        if not allocator.launches_nodes:
            self.paused = True   # static: wait for a slot to come free
            return None
        reason = allocator.unavailable(label_name)
        if reason is not None:
            # The cloud has no capacity for it: let another pool or
            # provider serve the request (or nobody, until the record
            # expires) instead of asking again.
            self.give_back(reason)
            return None
        verdict = allocator.reserve(label_name)
        if not verdict:
            if self.is_min_ready:
                self.decline("it would exceed quota")
                return None
            allocator.reclaim_ready_node()
            self._wait_at_quota(verdict)
            return None
        try:
            node = self._create_node(label_name)
        except BaseException:
            allocator.release(verdict.reservation)
            raise
        allocator.commit(verdict.reservation, node)
        return node

    def _create_node(self, label_name: str) -> Node:
        allocator = self.allocator
        if self.az is None:
            zones = allocator.zones()
            if zones:
                # One zone for the whole node set (behaviour 2).
                self.az = self._choose(list(zones))
        node, image_external_id = allocator.new_node(label_name)
        node.allocated_to = self.request.id
        node.tenant_name = self.request.tenant_name
        node.requestor = self.request.requestor
        node.az = self.az
        node.set_state(NodeState.INIT)
        self._live()
        # A lost reply may leave this init node created but unknown to us:
        # unlocked and owned by no handler, the cleanup worker removes it.
        self.zk.store_node(node)
        # Lock, BUILDING and the first attempt's create intent in one
        # transaction: the node never shows BUILDING unlocked, and the
        # intent is stored before any cloud call.
        # (No ``hostname``: upstream leaves it null on cloud nodes; the
        # cloud-side name np<id> comes from LaunchSpec.hostname.)
        node.set_state(NodeState.BUILDING)
        record_intent(node, 1, allocator.installation)
        self._live()
        try:
            self.zk.lock_new_node(node, timeout=NEW_NODE_LOCK_TIMEOUT)
        except zk_errors.LockedObjectGone:
            raise
        except zk_errors.LockError as exc:
            # Nobody else locks a fresh init node: connection trouble.  The
            # node is left unlocked for the cleanup worker.
            raise zk_errors.Transient(
                f"could not lock new node {node.id}: {exc}") from exc
        self.launchers[node.id] = allocator.launch(
            node, label_name, self.info, image_external_id)
        return node

    def _aborted(self):
        for index, node in enumerate(self.nodes):
            if node is None:
                continue
            launcher = self.launchers.get(node.id)
            if launcher is not None and launcher.outcome is Outcome.ABORTED:
                yield index, node

    def _drop_aborted(self) -> None:
        for index, node in list(self._aborted()):
            # The deleted-node worker removes the aborted node once unlocked.
            self.log.info("Node %s aborted; will replace it", node.id)
            del self.launchers[node.id]
            self._unlock(node)
            self.nodes[index] = None
            self._wait_at_quota()

    # -- endings ---------------------------------------------------------------
    def _fulfil(self) -> None:
        self._save_unsaved()
        self._live()
        self.request.nodes = [n.id for n in self.nodes]
        self.request.set_state(RequestState.FULFILLED)
        # Usually one transaction writes the request and releases every
        # lock; if the request changed meanwhile, write with merge and
        # unlock one by one.
        if self.zk.finish_request(self.request, self.nodes):
            self.log.info("Fulfilled request %s with nodes %s",
                          self.request.id, self.request.nodes)
            self.done = True
            self.trace.end(self.request)
            self.nodes = [None] * len(self.nodes)
            return
        try:
            self.zk.store_request(self.request)
        except zk_errors.NotFound:
            self.log.info("Request %s vanished before fulfilment",
                          self.request.id)
            self._release_all(deallocate=True)
            self._finish()
            return
        self.log.info("Fulfilled request %s with nodes %s", self.request.id,
                      self.request.nodes)
        self._release_all(deallocate=False)
        self._finish()

    def decline(self, reason: str) -> None:
        """Give the request back (or fail it if every pool declined).

        Raises only after ZooKeeper trouble writing the request (then it
        keeps the lock and is retried); any other failure is logged and
        the lock released (a lost request, reset by the cleanup worker).
        """
        self._live()
        self.log.info("Declining request %s: %s", self.request.id, reason)
        self.trace.declined(reason)
        self._release_all(deallocate=True)
        try:
            self._decline(self.request, reason)
        except Exception as exc:
            if zk_errors.is_transient(exc) and not self.done:
                raise
            self.log.exception("Could not decline request %s",
                               self.request.id)
        self._finish()

    def fail(self, reason: str) -> None:
        """Decline after an unexpected error (called by the pool worker)."""
        def action():
            self.decline(reason)
        try:
            action()
        except Exception as exc:
            if self.done:
                return
            if zk_errors.is_transient(exc):
                self.retry_later(action, exc)
                return
            self.log.exception("Could not decline request %s",
                               self.request.id)
            self._finish()

    def give_back(self, reason: str) -> None:
        """Leave the request to other pools without declining it (its
        nodes are freed; a declined request could fail for good)."""
        self._live()
        self.log.info("Giving request %s back: %s", self.request.id, reason)
        self._requeue()
        self._finish()

    def release(self) -> None:
        """Shutdown: free nodes, leave the request for someone else."""
        try:
            self._requeue()
        except Exception:
            self.log.exception("Could not reset request %s", self.request.id)
        self._finish()

    def _requeue(self) -> None:
        """Free the nodes and put the request back to ``requested``."""
        self._release_all(deallocate=True)
        if self.request.state == RequestState.PENDING:
            self.request.set_state(RequestState.REQUESTED)
            self.zk.store_request(self.request)

    def _release_all(self, deallocate: bool) -> None:
        self._unsaved = []
        for node in self.nodes:
            if node is None:
                continue
            launcher = self.launchers.get(node.id)
            if launcher is not None and launcher.detach():
                # Still launching: it finishes unallocated and unlocks the
                # node itself, leaving a READY spare (or a failed node for
                # the deleted-node worker).
                continue
            if deallocate and node.state == NodeState.READY:
                node.allocated_to = None
                try:
                    self.zk.store_node(node)
                except Exception:
                    self.log.exception("Could not deallocate node %s",
                                       node.id)
            self._unlock(node)
        self.nodes = [None] * len(self.nodes)

    def _unlock(self, node: Node) -> None:
        try:
            self.zk.unlock_node(node)
        except Exception:
            self.log.exception("Could not unlock node %s", node.id)

    def _finish(self) -> None:
        """The handler is done with the request: release its lock."""
        self.done = True
        self.trace.end(self.request)
        try:
            self.zk.unlock_request(self.request)
        except Exception:
            self.log.exception("Could not unlock request %s", self.request.id)

