"""The contract between the launcher and a cloud.

An adapter is small on purpose (compare Karpenter's CloudProvider): it
creates and deletes instances through state machines, lists what exists,
lists and deletes leaked side resources, and reports quota.  It turns cloud
errors into the framework exceptions of ``nodepool.driver.errors`` so the
launcher never parses a cloud's message.

Every verb has a meaningful default except the three every driver must
answer (``create_machine``, ``delete_machine``, ``list_instances``), and
the launcher calls every verb of every adapter the same way: it never asks
which driver it has, nor probes an adapter for a method.  Besides the
cloud verbs the contract has two optional capabilities, each a set of
verbs whose defaults are right for a cloud driver:

- ``console_log``: the instance's console output, logged when a launch
  fails its host-key scan and the label asks for it (default: no console).
- *Registered nodes* (``launches_nodes`` False, ``register_nodes``,
  ``node_deleted``, ``has_capacity_now``, ``owns``): a driver that hands
  out machines which already exist (the static driver) registers their
  nodes in ZooKeeper itself, on a thread of its own, through the
  ``NodeBoard`` the launcher gives it; the launcher then only hands those
  nodes out and never launches one.  The alternative, a create machine
  that waits for a free host, would write a new node per request and
  leave the core to tell waiting machines from launching ones (timeouts,
  quota, retries); with registration the core keeps one flag and four
  calls with no-op defaults, and the slot logic stays in the driver.

Threads: an adapter owns its create pool and batchers; ``start()``
starts them and ``stop()`` shuts them down (behaviour 39).  It reports
them through ``machinery()`` -- the status page and ``/metrics`` read
nothing else of an adapter's insides.  Every method may
be called from the provider's loop thread; the read-only ones also from the
cleanup worker, so they must be thread-safe.  ``has_capacity_now`` is
called from the provider's pool-worker threads, ``owns`` from any launcher
thread, ``console_log`` on a short-lived thread of its own, ``register_nodes``
from the thread that starts the provider; a driver of registered nodes
runs its registering on a thread it starts there and stops in ``stop()``.

Failure story: a cloud call that is throttled or fails transiently is
reported to its limiter and repeated in one layer, the driver's API
client (``nodepool.driver.limitedapi``); only its final
``TransientError`` or ``ThrottledError`` reaches a machine, and the
launcher repeats the step later without telling any limiter again.  A
refused credential or an unreachable endpoint raises ``AccessError`` from
every call: the adapter's ``access`` gate then holds all its calls back
with one exponential back-off (the launcher asks ``access.closed`` before
starting deletes), and logs the error once.  An
instance that is gone raises ``NotFoundError`` where the caller asked for it
(delete machines treat it as success).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from nodepool.driver.backoff import AccessGate
from nodepool.driver.batcher import Batcher
from nodepool.driver.createpool import CreatePool
from nodepool.driver.instance import Instance, Resource
from nodepool.driver.quota import Quota
from nodepool.driver.ratelimit import RateLimiter
from nodepool.driver.statemachine import LaunchSpec, StateMachine
from nodepool.zk.models import Node

if TYPE_CHECKING:
    from nodepool.zk import ZooKeeper

#: The ``launcher`` of a node a driver registered itself rather than had
#: the launcher launch (the value upstream's static driver writes, which
#: Zuul and upstream launchers know); a launched node carries the id of
#: the pool worker that made it.
REGISTERED_NODE_LAUNCHER = "static driver"


@dataclass(frozen=True)
class Machinery:
    """The framework pieces an adapter runs, for status and metrics
    (``Adapter.machinery``); read, never driven, by the caller -- except
    the limiters' share of the provider's rate, which the launcher's rate
    budget sets (``RateLimiter.set_share``)."""

    limiters: tuple[RateLimiter, ...] = ()
    create_pools: tuple[CreatePool, ...] = ()
    batchers: tuple[Batcher, ...] = ()


class CapacityBoard(Protocol):
    """What the launcher knows of offerings, for an adapter's machinery
    (``Adapter.attach_capacity``; the provider manager implements it)."""

    def offering_unavailable(self, pool, label):
        """The record keeping ``label`` of ``pool`` from launching now
        (None: it may launch); its ``describe()`` says why."""

    def capacity_signal(self, pool, label, short: bool, reason: str) -> None:
        """The cloud keeps starting fewer instances than asked for
        ``label`` of ``pool`` (``short``), or answered a call of several
        in full again (not ``short``)."""


class NodeBoard(Protocol):
    """What the launcher offers a driver that registers its own nodes
    (``Adapter.register_nodes``; the provider manager implements it)."""

    #: the launcher's ZooKeeper client: the driver reads, locks, writes
    #: and unlocks its provider's nodes with it
    zk: "ZooKeeper"

    def delete_node(self, node: Node) -> None:
        """Delete ``node``, which the caller has locked and written
        ``deleting``: its delete machine runs on the provider's loop,
        then its znode goes (and ``Adapter.node_deleted`` is called)."""

    def on_change(self) -> None:
        """The provider's nodes changed: the pool workers look again."""


class Adapter(abc.ABC):
    """Base class of every cloud adapter; ``provider`` is its config."""

    #: plural resource names for leak metrics this adapter may report
    leak_types: tuple[str, ...] = ("instances",)
    #: this installation's id, set by the launcher before ``start()``.
    #: Resources made from a LaunchSpec carry it already (its
    #: ``metadata``); an adapter that creates or deletes something by tags
    #: outside a spec (AWS launch templates) tags and judges it with this
    #: (``nodepool.driver.installation``).  None outside a launcher.
    installation: str | None = None
    #: False: this driver launches nothing -- it registers the nodes it
    #: hands out itself (``register_nodes``).  The launcher then reuses a
    #: READY node for every request (whatever its ``reuse``) and, when none
    #: is free, waits for one instead of launching.
    launches_nodes: bool = True

    def __init__(self, provider, log: logging.Logger | None = None):
        self.provider = provider
        self.log = log or logging.getLogger(
            f"nodepool.driver.{provider.driver}.{provider.name}")
        self.capacity: CapacityBoard | None = None
        #: every cloud call of the provider passes this gate: after a
        #: credential or endpoint error (``AccessError``) all of them back
        #: off together, and the error is logged once (``backoff.py``)
        self.access = AccessGate(provider.name, logger=self.log)

    def attach_capacity(self, board: CapacityBoard) -> None:
        """The launcher's offering records, for machinery that batches
        launches: ``board.offering_unavailable`` before it sends a call
        (launches queued when a capacity error lands elsewhere are not
        sent), ``board.capacity_signal`` for partial answers, which are
        no error of any one launch (``nodepool.driver.offerings``)."""
        self.capacity = board

    def machinery(self) -> Machinery:
        """The rate limiters, create pools and batchers this adapter runs
        (the status page and ``/metrics`` show their figures).  Cheap and
        side-effect free; the same objects on every call.  Default: none."""
        return Machinery()

    def start(self) -> None:
        """Start background machinery (create pool, batchers)."""

    def stop(self) -> None:
        """Stop background machinery; in-flight futures complete or fail."""

    @abc.abstractmethod
    def create_machine(self, spec: LaunchSpec) -> StateMachine:
        """A machine that creates one instance for ``spec``.

        Each machine may create a new instance; adapters whose cloud has
        an idempotency token should pass ``spec.client_token`` (recorded in
        the node before the call) so a repeated call of one attempt names
        the same instance.  The
        machine's steps raise QuotaError/CapacityError (node aborted, request
        retried), LaunchError (attempt failed), ConfigurationError (label can
        never be served) or TransientError/ThrottledError.
        """

    @abc.abstractmethod
    def delete_machine(self, external_id, immediate: bool = False
                       ) -> StateMachine:
        """A machine that deletes the instance ``external_id``.

        Idempotent: deleting a missing instance completes normally.
        ``immediate`` skips batching (retry and leak-cleanup paths).
        """

    @abc.abstractmethod
    def list_instances(self) -> Iterable[Instance]:
        """Every instance visible to this provider, ours or not.

        Read-only and idempotent; may be served from a cache a few seconds
        old.  Instances of other providers reduce our quota (behaviour 34).
        """

    def find_instances(self, node_id: str) -> list[Instance]:
        """Instances tagged with ``node_id``, however they were created.

        Used to delete a node whose launch was cut short before its
        ``external_id`` was stored (a crashed launcher); the deleted-node
        worker deletes only those tagged with our installation (another
        installation has a node of the same id).  Called from the
        deleted-node worker (may block on the cloud).  The default filters
        ``list_instances``; adapters whose listing is cached should answer
        from a fresh one.
        """
        return [i for i in self.list_instances() if i.node_id == node_id]

    def list_resources(self) -> Iterable[Resource]:
        """Side resources carrying our tags that may leak (volumes, ...)."""
        return ()

    def delete_resource(self, resource: Resource) -> None:
        """Delete a leaked side resource; NotFoundError counts as done.

        Only what ``list_resources`` listed is passed here; the default
        lists nothing, so it has nothing to delete (an adapter overrides
        both or neither)."""

    def quota_limits(self) -> Quota:
        """The cloud's limits for this provider (default: unlimited)."""
        return Quota.unlimited()

    def label_quota(self, label) -> Quota:
        """What one node of ``label`` costs (default: one instance)."""
        return Quota(instances=1)

    def availability_zones(self, pool) -> list[str]:
        """Zones a request's nodes may be placed in; one is chosen per
        request so that all its nodes share it.  Empty: the cloud picks
        (and the first node's zone is then used for the rest)."""
        return []

    def offering(self, pool, label) -> str | None:
        """What a create call for ``label`` in ``pool`` asks the cloud for
        (place and size, e.g. ``"subnet-1/t3.large"``): capacity errors are
        remembered per offering (``nodepool.driver.offerings``), so labels
        and pools that name the same offering share its record.  None: not
        tracked.  The default is the pool and label names."""
        return f"{pool.name}/{label.name}"

    def image_available(self, label) -> bool:
        """False when the label's image cannot be used right now."""
        return True

    def label_usable(self, label) -> bool:
        """False when the label can never be launched here (declined)."""
        return True

    def console_log(self, external_id) -> str | None:
        """The console output of instance ``external_id``, logged when its
        launch fails the host-key scan and the label sets ``console-log``.

        A cloud call, made on a thread of its own; may raise any driver
        error (it is logged, the launch fails as it would have).  None
        (the default): this cloud keeps no console output."""
        return None

    # -- registered nodes (see the module docstring) -------------------------
    def register_nodes(self, board: NodeBoard) -> None:
        """Start keeping this driver's registered nodes in ZooKeeper.

        Called by the launcher for every adapter, once, after ``start()``;
        the registering stops with ``stop()``.  Default: nothing (the
        launcher launches a cloud driver's nodes)."""

    def node_deleted(self, node: Node) -> None:
        """The launcher removed the znode of ``node`` of this provider.

        Called on the provider's loop thread; must not block.  Default:
        nothing.  A driver of registered nodes registers a free slot."""

    def has_capacity_now(self, pool, request,
                         nodes: Callable[[], Iterable[Node]]) -> bool:
        """True when ``pool`` may take ``request`` now; False defers it.

        Called by the pool worker before it accepts a request; ``nodes()``
        are its read-only records of this pass.  Default: True (a cloud
        driver launches on demand; quota is the launcher's business).  A
        driver of registered nodes answers whether a free one is there for
        every label of the request."""
        return True

    def owns(self, node: Node) -> bool:
        """True when this driver may act on ``node`` of its provider's name.

        A provider name can pass from one driver to another across reloads
        (a static provider named like a removed cloud one).  The nodes the
        old driver left keep their records and instances; the new driver
        must neither hand them out nor delete them -- its delete would not
        reach their instances, so the records would go while the instances
        keep running.  Default: a launched node (every node but a
        registered one, ``REGISTERED_NODE_LAUNCHER``)."""
        return node.launcher != REGISTERED_NODE_LAUNCHER


class ApiLimiters(Protocol):
    """The two limiters of a cloud API client (``LimitedApi``)."""

    limiter: RateLimiter
    read_limiter: RateLimiter


class CloudAdapter(Adapter):
    """The base of the adapters of real clouds: every call passes the two
    limiters of one API client (``api``, set by the subclass), creates run
    on one ``create_pool``, and ``batchers`` (if any) send grouped calls.
    The machinery they report is the same for every cloud, so it is
    written here once."""

    api: ApiLimiters
    create_pool: CreatePool
    #: the adapter's batchers, for ``machinery()``
    batchers: tuple[Batcher, ...] = ()

    @property
    def limiter(self) -> RateLimiter:
        """The mutating-call limiter."""
        return self.api.limiter

    def machinery(self) -> Machinery:
        return Machinery(limiters=(self.api.limiter, self.api.read_limiter),
                         create_pools=(self.create_pool,),
                         batchers=self.batchers)
