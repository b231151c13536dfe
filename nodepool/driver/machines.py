"""The create and delete machines' shared steps: the launch policy, once.

Why here: every cloud creates an instance the same way -- submit one call,
read its answer, then follow the instance until it runs -- and deletes it
the same way -- send the delete (batched or at once), take "not found" as
gone, then watch the instance go.  What differs is the cloud's own steps
and how to read its records.  Each driver used to carry its own copy of
the shared part (back-off, partial batches, cancellation, abandoned
attempts), and the copies drifted; now a driver's machine declares only
its cloud's states and a few hooks, and the policy lives here and in
``calls.py`` (when a refused call is sent again).

``CreateMachine``::

    SUBMIT --> CREATING --> <the driver's states> --> READY
      ^           |  access error: when the gate opens; partial batch: at once
      +-----------+

SUBMIT sends ``send_create()`` when its ``Call`` is due; CREATING reads
the answer, sets ``external_id`` from ``identify(answer)`` (the launcher
persists it before anything else, so a crash cannot leak the instance)
and goes where ``answered(answer)`` says.  ``abandon()`` (a newer attempt of
the same node started, ``PendingCreates``) cancels a create not yet sent,
and deletes (``delete_orphan``) what one under way still makes.

``DeleteMachine``::

    SUBMIT --> DELETING --> WAITING --> gone() --> DONE (or the driver's)

SUBMIT sends ``send_delete()`` (the driver queues it in its batcher or
sends it at once when ``immediate``); DELETING reads the answer ("not
found" is gone, ``not_found()``); WAITING follows ``lookup()`` until the
record is missing from a fresh listing or ``is_deleted``, so the quota is
free before the node goes.  Past ``WAIT_LIMIT`` seconds after the delete
was accepted ``wait_limit(record)`` decides (give up, or count it gone).

``PendingCreates`` keeps the latest attempt of each node for its adapter.

Failure story: a create waits for the provider's access gate after an
``AccessError``, bounded by the launcher's launch-timeout; a throttle or a
transient error is final here (``LimitedApi`` repeated it, the one layer
that does) and, like quota, capacity, launch and configuration errors, is
raised to the launcher, which decides (a new attempt, within
launch-retries).
A delete raises whatever is not "not found" (the launcher's deleter keeps
the node ``deleting`` and tries again with a new machine); a cancelled
call (provider stopping) fails the attempt.  An orphan's delete is sent on
the thread that completed the create, never waited for.

Threads: a machine is stepped by its provider's loop thread only.
``abandon`` and ``PendingCreates`` are called from pool workers (a first
attempt) and the loop (retries); ``PendingCreates`` holds one lock, never
across ``abandon``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, Protocol, TypeVar

from nodepool.driver import errors
from nodepool.driver.backoff import AccessGate
from nodepool.driver.calls import Call
from nodepool.driver.statemachine import LaunchSpec, StateMachine

__all__ = ["CreateMachine", "DeleteMachine", "PendingCreates", "Lookup"]

_log = logging.getLogger("nodepool.driver")


class Lookup(Protocol):
    """A driver's latest record of an instance: ``record`` None when the
    listing did not show it; ``fresh`` when that listing started after
    the machine asked (only then is a missing record news)."""

    record: Any
    fresh: bool


class CreateMachine(StateMachine):
    """The shared create steps (see the module docstring).

    A driver subclass declares its own ``State`` enum and ``STEPS`` for
    the states after the create call, and the hooks below; its steps end
    in ``self.Phase.READY`` with ``self.instance`` set.
    """

    class Phase(enum.Enum):
        SUBMIT = "submit"
        CREATING = "creating"
        READY = "ready"

    STEPS = {Phase.SUBMIT: "submit", Phase.CREATING: "creating"}
    TERMINAL = frozenset({Phase.READY})
    INITIAL = Phase.SUBMIT
    #: the driver's logger (its module's name), for the policy's lines too
    log: ClassVar[logging.Logger] = _log

    def __init__(self, spec: LaunchSpec, access: AccessGate,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock or time.monotonic)
        self.spec = spec
        # The machine's clock is read late: tests may replace it.
        self.create = Call("create", access, lambda: self.clock(),
                           node=spec.node_id, log=self.log)

    # -- hooks ---------------------------------------------------------------
    def send_create(self) -> Future:
        """Hand the create call to the pool or batcher; never blocks."""
        raise NotImplementedError

    def identify(self, answer: Any) -> Any:
        """The node's ``external_id`` of what the create call answered."""
        raise NotImplementedError

    def answered(self, answer: Any) -> enum.Enum:
        """The first state after the answer (``external_id`` is set)."""
        raise NotImplementedError

    def delete_orphan(self, external_id: Any) -> None:
        """Delete what an abandoned attempt created; must not block."""
        raise NotImplementedError

    # -- steps ---------------------------------------------------------------
    def submit(self):
        if not self.create.due:
            return self.Phase.SUBMIT
        self.create.send(self.send_create())
        return self.Phase.CREATING

    def creating(self):
        if not self.create.poll():
            # Still under way, or refused: sent again when due.
            return self.Phase.CREATING if self.create.running \
                else self.submit()
        answer = self.create.value
        self.external_id = self.identify(answer)
        return self.answered(answer)

    def abandon(self) -> None:
        """A newer attempt replaced this one: a create not yet sent is
        cancelled, what one under way makes is deleted at once instead of
        living on under a node id that exists.  An answer already in but
        not read yet is deleted too: the launcher never learnt its id."""
        self.create.abandon(self._delete_orphan)

    def _delete_orphan(self, answer: Any) -> None:
        external_id = self.identify(answer)
        self.log.info("Node %s: deleting %s of an abandoned attempt",
                      self.spec.node_id, external_id)
        self.delete_orphan(external_id)


class DeleteMachine(StateMachine):
    """The shared delete steps (see the module docstring).

    A driver subclass gives the hooks below; it may declare a ``State``
    enum and ``STEPS`` of its own for what follows ``gone()``.
    """

    class Phase(enum.Enum):
        SUBMIT = "submit"
        DELETING = "deleting"
        WAITING = "waiting"
        DONE = "done"

    STEPS = {Phase.SUBMIT: "submit", Phase.DELETING: "deleting",
             Phase.WAITING: "waiting"}
    TERMINAL = frozenset({Phase.DONE})
    INITIAL = Phase.SUBMIT
    #: seconds after the delete was accepted that ``wait_limit`` decides
    WAIT_LIMIT = 600.0

    def __init__(self, external_id: Any, immediate: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock or time.monotonic)
        self.external_id = external_id
        self.immediate = immediate
        self.future: Future | None = None
        self.retry_at = 0.0
        self.accepted_at: float | None = None

    # -- hooks ---------------------------------------------------------------
    def send_delete(self) -> Future:
        """Queue the delete (or send it at once when ``immediate``)."""
        raise NotImplementedError

    def watch(self) -> None:
        """Start following the instance (the delete was accepted)."""

    def unwatch(self) -> None:
        """Stop following it."""

    def lookup(self) -> Lookup:
        raise NotImplementedError

    def is_deleted(self, record: Any) -> bool:
        raise NotImplementedError

    def not_found(self):
        """The cloud does not know the instance: gone, by default."""
        return self.gone()

    def still_there(self, record: Any):
        """The instance is listed and not deleted yet: keep waiting."""
        return self.Phase.WAITING

    def wait_limit(self, record: Any):
        """Still listed ``WAIT_LIMIT`` seconds after the delete was
        accepted: raise, for the launcher to delete it again later."""
        self.unwatch()
        raise errors.TransientError(
            f"{self.external_id} still there {self.WAIT_LIMIT:.0f}s after "
            "its delete")

    def gone(self):
        """The instance is gone."""
        self.unwatch()
        return self.Phase.DONE

    # -- steps ---------------------------------------------------------------
    def submit(self):
        if self.clock() < self.retry_at:
            return self.Phase.SUBMIT
        self.future = self.send_delete()
        return self.Phase.DELETING

    def deleting(self):
        if not self.future.done():
            return self.Phase.DELETING
        future, self.future = self.future, None
        try:
            future.result()
        except errors.NotFoundError:
            return self.not_found()
        if self.accepted_at is None:
            self.accepted_at = self.clock()
        self.watch()
        return self.Phase.WAITING

    def waiting(self):
        look = self.lookup()
        if look.record is None:
            return self.gone() if look.fresh else self.Phase.WAITING
        if self.is_deleted(look.record):
            return self.gone()
        if self.clock() - self.accepted_at > self.WAIT_LIMIT:
            return self.wait_limit(look.record)
        return self.still_there(look.record)


class Attempt(Protocol):
    """What ``PendingCreates`` reads of a create machine."""

    spec: LaunchSpec
    state_time: float

    @property
    def complete(self) -> bool: ...

    def clock(self) -> float: ...

    def abandon(self) -> None: ...


M = TypeVar("M", bound=Attempt)


class PendingCreates:
    """The latest create machine of each node, for its adapter.

    The launcher starts a new attempt of a node (a new create machine)
    when the previous one failed or timed out -- possibly while that
    one's create call is still under way.  ``attempt(machine)`` makes
    ``machine`` its node's attempt and abandons the previous one unless it
    completed.  Machines that are complete, or have not changed state for
    ``horizon`` seconds (the launcher gave up on them), are forgotten.
    """

    def __init__(self, horizon: float = 3600.0) -> None:
        self.horizon = horizon
        self._lock = threading.Lock()
        self._machines: dict[str, Attempt] = {}
        self._prune_at = 64

    def __len__(self) -> int:
        return len(self._machines)

    def attempt(self, machine: M) -> M:
        """``machine`` is its node's launch attempt now; returned."""
        node_id = machine.spec.node_id
        with self._lock:
            previous = self._machines.get(node_id)
            self._machines[node_id] = machine
            if len(self._machines) >= self._prune_at:
                self._prune(machine.clock() - self.horizon)
        if previous is not None and previous is not machine \
                and not previous.complete:
            previous.abandon()
        return machine

    def _prune(self, horizon: float) -> None:
        # Amortised: the table is swept when it has doubled since.
        self._machines = {n: m for n, m in self._machines.items()
                          if not m.complete and m.state_time >= horizon}
        self._prune_at = max(64, 2 * len(self._machines))
