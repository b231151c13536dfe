"""One running provider: its adapter, and the loop that advances launches
and deletes.

Threads: ``ProviderManager`` owns one thread, ``<provider>-loop``, which is
the only thread that advances this provider's ``NodeLaunch`` and
``NodeDeleter`` objects (so they need no locks of their own).  Other threads
hand work in through ``launch()``/``delete_node()``/``delete_instance()``,
which only append under ``_lock`` and wake the loop.  The loop never waits
for ZooKeeper to remove a deleted node's znode: the transaction is sent
(``NodeStore.delete_node_async``), its reply wakes the loop (kazoo's thread
only sets the wake event), and the loop settles it on a later tick (a
round trip per node on the loop held every launch and delete of a busy
provider behind ZooKeeper's replies).  With tracing on
(``nodepool.launcher.tracing``) the loop thread also records each launch's
steps (``LaunchTrace.advance``) and ends the deleters' spans.

Ownership: a provider acts only on the nodes of its name that its kind of
driver made (``owns``, the adapter's answer); nodes another driver left
under the name are left alone, records and instances, until a provider of
their kind has the name again.

The manager is the same for every driver: what differs is asked of the
adapter contract (``nodepool.driver.adapter``).  A driver of registered
nodes (the static driver) is handed this manager as its ``NodeBoard`` when
it starts, deletes its nodes through ``delete_node`` like any other, and
hears of each removed znode through ``Adapter.node_deleted``.

Failure story: an exception from one launch or deleter is contained to it
(the launch fails its attempt; the deleter releases the node lock so the
deleted-node worker retries on a later round).  After a credential or
endpoint error the adapter's ``access`` gate holds every cloud call back
(exponentially, up to a minute); ``cloud_backing_off()`` tells the
deleted-node worker and the leak cleanup to start nothing meanwhile, and
launches repeat their step once the gate lets calls through.  If the
ZooKeeper session is lost, every running launch is failed, by the loop
thread (``session_lost`` only hands them over): their node locks vanished
with the session.  ``stop()`` stops the loop and the
adapter's machinery; launches still running are abandoned with their nodes
locked by our (closing) session, so they are cleaned up like a crashed
launcher's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterable

from nodepool.driver.installation import foreign
from nodepool.driver.backoff import SUMMARY_INTERVAL, RepeatLog, log_failure
from nodepool.driver.errors import AccessError
from nodepool.driver.offerings import Offerings
from nodepool.driver.quota import Quota
from nodepool.launcher import tracing
from nodepool.launcher.nodelaunch import NodeLaunch
from nodepool.zk.models import Node


# Node costs remembered by node_cost, one per distinct ``resources``
# (cleared when exceeded: a cloud reporting per-node figures).
COST_MEMO_LIMIT = 10000


class NodeDeleter:
    """Delete one locked node's instance(s), then its znode.

    ``extra_ids`` are further instances of the node (found by its tag after
    a crashed launch); the znode goes only once all of them are gone.
    """

    def __init__(self, manager: "ProviderManager", node: Node | None,
                 external_id, immediate: bool = False,
                 extra_ids: Iterable = ()):
        self.manager = manager
        self.node = node
        self.external_id = external_id
        ids = ([external_id] if external_id is not None else []) + \
            list(extra_ids)
        self.machines = [manager.adapter.delete_machine(i, immediate)
                         for i in ids]
        self.trace = manager.tracer.delete(node, manager.provider.name,
                                           external_id)
        self.done = False
        self.failed = False
        self.started = time.monotonic()
        # the znode's removal in flight (``NodeStore.delete_node_async``)
        self.removal = None

    def advance(self) -> bool:
        if self.done:
            return True
        if self.removal is None:
            if not self._instances_gone():
                return self.done
            if self.node is not None:
                # The znode goes in one transaction the loop does not
                # wait for: it is polled (and wakes the loop) instead.
                self.removal = self.manager.start_removal(self.node)
        if self.removal is not None:
            if not self.removal.done():
                return False
            self.manager.finish_removal(self.node, self.removal)
        self.done = True
        self.trace.end()
        return True

    def _instances_gone(self) -> bool:
        """Step the delete machines; True once every one is done.  A
        failure releases the node for a later round (``done``, ``failed``)."""
        try:
            self.machines = [m for m in self.machines if not m.advance()]
            return not self.machines
        except Exception as e:
            # An AccessError has been logged once by the adapter's gate.
            log_failure(
                self.manager.log, e, "Deleting instance %s of node %s failed"
                " (retrying later): %s", self.external_id,
                self.node.id if self.node else None, e)
            self.failed = True
            self.done = True
            if self.node is not None:
                self.manager.release(self.node)
            self.trace.end(e)
            return False


class _FailedRemoval:
    """A removal that could not even be sent: done at once, and its
    ``finish`` raises why (the node is unlocked and retried later)."""

    def __init__(self, exc: Exception):
        self.exc = exc

    def done(self) -> bool:
        return True

    def on_done(self, callback) -> None:
        callback()

    def finish(self) -> None:
        raise self.exc


class ProviderManager:
    """See the module docstring; the adapter's ``NodeBoard``."""

    def __init__(self, provider, adapter, zk, stats, keyscan_pool,
                 on_change=None, zk_ready=None, tracer=tracing.NULL):
        self.provider = provider
        self.adapter = adapter
        self.zk = zk
        self.stats = stats
        self.keyscan_pool = keyscan_pool
        # nodepool.launcher.tracing: the spans of launches and deletes
        self.tracer = tracer
        self._traces: dict[NodeLaunch, tracing.LaunchTrace] = {}
        self.on_change = on_change or (lambda: None)
        # While the ZooKeeper session is suspended or lost nothing may be
        # written (zookeeper.md §1): the loop then waits instead of
        # advancing machines whose next step would write a node.
        self.zk_ready = zk_ready or (lambda: True)
        self.log = logging.getLogger(f"nodepool.provider.{provider.name}")
        self._launches: list[NodeLaunch] = []
        # launches of a lost session, for the loop to fail
        self._lost: list[NodeLaunch] = []
        self._deleters: list[NodeDeleter] = []
        self._deleting_ids: set[str] = set()
        # Requests this provider's pool workers are taking: accepted, their
        # launches not handed in yet.  max-concurrency counts them with the
        # launches, over all the provider's pools (behaviour 20).
        self._taking: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._list_failures = RepeatLog(self.log, SUMMARY_INTERVAL)
        self._cost_memo: dict[frozenset, Quota] = {}
        self.offerings = Offerings(zk, provider.name)
        self.adapter.attach_capacity(self)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"provider {self.provider.name} already started")
        self.adapter.start()
        self.adapter.register_nodes(self)
        self._thread = threading.Thread(
            target=self._run, name=f"{self.provider.name}-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.adapter.stop()

    def wake(self) -> None:
        self._wake.set()

    # -- work hand-in ------------------------------------------------------
    def launch(self, node: Node, pool, label, request=None,
               image_external_id=None) -> NodeLaunch:
        launch = NodeLaunch(self, node, pool, label, request,
                                image_external_id=image_external_id)
        # Started here, on the handing-over thread: the request's span,
        # current there, is its parent.
        trace = self.tracer.launch(node, pool, label, launch.request)
        with self._lock:
            self._launches.append(launch)
            if trace is not tracing.NULL:
                self._traces[launch] = trace
        self.wake()
        return launch

    @property
    def active_launches(self) -> int:
        with self._lock:
            return sum(1 for launch in self._launches if not launch.done)

    def reserve_take(self, request_id: str, launches: int) -> bool:
        """Count a request being taken against ``max-concurrency``.

        Atomic for all pool workers of the provider: False (nothing
        reserved) when the launches in progress plus the requests being
        taken would exceed it with ``launches`` more.  As upstream, a
        request is not refused when nothing is in flight.
        """
        limit = self.provider.max_concurrency
        with self._lock:
            if limit > 0:
                in_flight = len(self._taking) + sum(
                    1 for launch in self._launches if not launch.done)
                if in_flight and in_flight + launches > limit:
                    return False
            self._taking.add(request_id)
            return True

    def end_take(self, request_id: str) -> None:
        """The request's launches (if any) are handed in, or it was let go."""
        with self._lock:
            self._taking.discard(request_id)

    @property
    def launches_nodes(self) -> bool:
        """False when the adapter registers the nodes it hands out
        (``Adapter.launches_nodes``): nothing is launched, requests wait
        for a free node instead."""
        return self.adapter.launches_nodes

    def owns(self, node: Node) -> bool:
        """True when this provider's driver may act on ``node``
        (``Adapter.owns``: a launched node, or a registered one)."""
        return self.adapter.owns(node)

    def is_deleting(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self._deleting_ids

    def delete_node(self, node: Node, extra_ids: Iterable = ()) -> None:
        """Delete a node we hold the lock of (state already ``deleting``),
        and the instances ``extra_ids`` that also belong to it."""
        with self._lock:
            if node.id in self._deleting_ids:
                return
            self._deleting_ids.add(node.id)
            self._deleters.append(NodeDeleter(self, node, node.external_id,
                                              extra_ids=extra_ids))
        self.wake()

    def delete_instance(self, external_id, immediate: bool = False) -> None:
        """Delete a cloud instance that has no node (retry/leak paths)."""
        with self._lock:
            self._deleters.append(
                NodeDeleter(self, None, external_id, immediate))
        self.wake()

    # -- helpers used by deleters -------------------------------------------
    def release(self, node: Node) -> None:
        with self._lock:
            self._deleting_ids.discard(node.id)
        try:
            self.zk.unlock_node(node)
        except Exception:
            self.log.exception("Could not unlock node %s", node.id)

    def start_removal(self, node: Node):
        """Send the removal of ``node``'s znode (and its lock); the
        returned ``PendingDelete`` wakes the loop when its reply is in."""
        try:
            removal = self.zk.delete_node_async(node)
        except Exception as exc:         # said once, by finish_removal
            removal = _FailedRemoval(exc)
        removal.on_done(self.wake)
        return removal

    def finish_removal(self, node: Node, removal) -> None:
        """On the loop thread, once ``removal`` is done: settle it, then
        what follows a removed znode."""
        try:
            removal.finish()
            self.log.info("Deleted node %s (%s)", node.id, node.external_id)
        except Exception:
            self.log.exception("Could not remove znode of node %s", node.id)
        finally:
            with self._lock:
                self._deleting_ids.discard(node.id)
            try:
                self.zk.unlock_node(node)
            except Exception:
                pass
        self.on_change()
        try:
            self.adapter.node_deleted(node)
        except Exception:   # the loop thread must go on
            self.log.exception("Adapter failed on deleted node %s", node.id)

    def cloud_backing_off(self) -> bool:
        """True while the adapter's cloud calls are held back after a
        credential or endpoint error (``nodepool.driver.backoff``): the
        deleted-node worker and the leak cleanup then start nothing."""
        return self.adapter.access.closed

    def session_lost(self) -> None:
        """The ZooKeeper session ended (called on kazoo's connection
        thread): the launches running now are handed to the loop thread,
        which fails them -- it alone advances a launch, so none is failed
        while it is being advanced, and the listeners it reports to run
        on the loop, not on kazoo's thread."""
        with self._lock:
            self._lost.extend(self._launches)
        self.wake()

    def _fail_lost(self) -> None:
        with self._lock:
            lost, self._lost = self._lost, []
        for launch in lost:
            launch.session_lost()

    # -- the loop ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._fail_lost()
            if not self.zk_ready():
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            busy = self._advance_all()
            # Poll quickly while machines are in flight (their futures finish
            # on other threads); idle otherwise until new work wakes us.
            self._wake.wait(0.02 if busy else 1.0)
            self._wake.clear()

    def _advance_all(self) -> bool:
        with self._lock:
            launches = list(self._launches)
            deleters = list(self._deleters)
        finished = False
        for launch in launches:
            trace = self._traces.get(launch)
            done = (launch.advance() if trace is None
                    else trace.advance(launch))
            if done:
                launch.finished()
                finished = True
        for deleter in deleters:
            deleter.advance()
        with self._lock:
            self._launches = [x for x in self._launches if not x.done]
            if self._traces:
                self._traces = {x: t for x, t in self._traces.items()
                                if not x.done}
            self._deleters = [x for x in self._deleters if not x.done]
            busy = bool(self._launches or self._deleters)
        if finished:
            self.on_change()
        return busy

    # -- what this provider can serve -----------------------------------------
    def has_capacity_now(self, worker, request) -> bool:
        """False defers ``request`` for ``worker``'s pool: the adapter's
        answer (a cloud launches on demand; registered nodes may all be
        busy), given the worker's records of this pass."""
        return self.adapter.has_capacity_now(worker.pool, request,
                                             worker.nodes_cached)

    def label_usable(self, label) -> bool:
        return self.adapter.label_usable(label)

    def image_available(self, label) -> bool:
        return self.adapter.image_available(label)

    # -- offerings (capacity errors remembered: nodepool.driver.offerings) --
    def offering_unavailable(self, pool, label):
        """The record that keeps ``label`` of ``pool`` from launching now
        (None: it may launch)."""
        return self.offerings.unavailable(self.adapter.offering(pool, label))

    def offering_short(self, pool, label):
        """The record saying ``label`` of ``pool`` launches from an offering
        short of capacity (None: it is not)."""
        return self.offerings.short_record(self.adapter.offering(pool, label))

    def _offering_users(self, key: str) -> dict[str, list[str]]:
        """The pools of this provider and their labels that launch ``key``."""
        users: dict[str, list[str]] = {}
        for other in self.provider.pools.values():
            for other_label in other.labels.values():
                if self.adapter.offering(other, other_label) == key:
                    users.setdefault(other.name, []).append(other_label.name)
        return users

    def capacity_error(self, pool, label, error) -> None:
        key = self.adapter.offering(pool, label)
        if key is None:
            return
        try:
            self.offerings.capacity_error(key, str(error),
                                          self._offering_users(key))
        except Exception as exc:
            self.log.warning("Could not record capacity error of offering "
                             "%s: %s", key, exc)

    def capacity_signal(self, pool, label, short: bool, reason: str
                        ) -> None:
        """A signal from the adapter's machinery (``CapacityBoard``)."""
        key = self.adapter.offering(pool, label)
        if key is None:
            return
        try:
            if short:
                self.offerings.short(key, reason, self._offering_users(key))
            else:
                self.offerings.ample(key)
        except Exception as exc:
            self.log.warning("Could not record capacity signal of offering "
                             "%s: %s", key, exc)

    def launch_succeeded(self, pool, label) -> None:
        try:
            self.offerings.succeeded(self.adapter.offering(pool, label))
        except Exception as exc:
            self.log.warning("Could not clear offering record: %s", exc)

    # -- quota -------------------------------------------------------------
    def node_cost(self, node: Node, pool=None) -> Quota:
        if node.resources:
            # Usage sums call this for every node of the provider: remember
            # the cost per distinct resources (the nodes of a label share
            # theirs), not per node, so that nothing outlives the nodes.
            try:
                key = frozenset(node.resources.items())
            except TypeError:       # an unhashable value: not remembered
                return Quota.from_resources(node.resources)
            cost = self._cost_memo.get(key)
            if cost is None:
                cost = Quota.from_resources(node.resources)
                if len(self._cost_memo) > COST_MEMO_LIMIT:
                    self._cost_memo.clear()
                self._cost_memo[key] = cost
            return cost
        labels = node.type or []
        pool = pool or self.provider.pools.get(node.pool)
        if pool is not None and labels and labels[0] in pool.labels:
            return self.adapter.label_quota(pool.labels[labels[0]])
        return Quota(instances=1)

    def cloud_instances(self) -> list:
        """Every instance the adapter lists, ours or not (for quota).

        Nothing is cached here: the adapter's listing is the one cache
        (``Adapter.list_instances`` may answer a few seconds old; the
        cloud drivers keep it in ``nodepool.driver.ttlcache``, which also
        serves the last list while a refresh fails).  When the adapter
        has no list, no instance is counted: the cloud's own quota error
        still aborts a launch that does not fit (behaviour 14).  The
        failure is logged once, then summarized."""
        try:
            instances = list(self.adapter.list_instances())
        except Exception as e:
            if isinstance(e, AccessError):  # the adapter's gate says it
                self.log.debug("Could not list instances: %s", e)
            else:
                self._list_failures.report(
                    "list", "Could not list instances", str(e),
                    level=logging.WARNING, exc=e)
            return []
        self._list_failures.clear("list", "Listing instances works again")
        return instances

    def provider_limits(self) -> Quota:
        return self.adapter.quota_limits()

    def provider_used(self, nodes: Iterable[Node]) -> Quota:
        """Quota used by our nodes plus instances we do not manage.

        Unmanaged, as upstream counts it: every instance of the account
        that is not the instance of one of this provider's nodes -- other
        providers' and operators' instances, instances tagged with our
        provider whose node id is missing or unknown (leaks not yet reaped,
        an upload helper's instance), and those of another installation
        sharing the account and provider name (its node ids collide with
        ours).  Ours are counted once, by their node's ``resources``."""
        ours = [n for n in nodes if n.provider == self.provider.name]
        used = Quota.total(self.node_cost(n) for n in ours)
        if self.adapter.quota_limits().values:
            known = {n.id for n in ours}
            installation = self.adapter.installation
            for inst in self.cloud_instances():
                if inst.provider_name == self.provider.name and \
                        inst.node_id in known and \
                        not foreign(inst.metadata, installation):
                    continue
                used = used + Quota.from_resources(inst.resources)
        return used
