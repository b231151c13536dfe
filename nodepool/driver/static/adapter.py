"""The static driver: pre-existing hosts, handed out as registered nodes.

Nothing is launched and nothing is deleted in a cloud.  The driver uses
the *registered nodes* capability of the adapter contract
(``nodepool.driver.adapter``): ``launches_nodes`` is False, so the launcher
hands out READY nodes and never asks for a create; ``register_nodes``
starts the slot keeping (``nodepool.driver.static.slots``) with the
launcher's ``NodeBoard``; ``node_deleted`` tells it a slot came free;
``has_capacity_now`` answers whether a free, live slot is there for every
label of a request; ``owns`` claims the registered nodes only, so nodes a
cloud driver launched under the same provider name are never handed out
or deleted here.  The launcher runs this adapter exactly as it runs a
cloud one: it knows no static driver.

Registration rather than a create machine that waits for a free host:
the slots must exist as READY znodes before any request (Zuul and
upstream launchers see them so, node ids are stable per registration),
and a waiting create machine would put a second kind of launch -- one
that neither times out nor counts quota -- into the core.

Threads: the slots' ``<provider>-static-sync`` thread (started by
``register_nodes``, stopped by ``stop``); the rest runs on the caller's
thread (see ``slots``).

Failure story: see ``slots`` (per-host back-off, deregistration of hosts
that stop answering).  ``create_machine`` is never called by the launcher
(``launches_nodes``); if it were, its machine fails with a
``ConfigurationError`` (the label can never be launched here) instead of
crashing the launch.  ``delete_machine`` completes at once: the znode is
all there is.
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable

from nodepool.driver import errors
from nodepool.driver.adapter import Adapter, NodeBoard
from nodepool.driver.instance import Instance
from nodepool.driver.static.slots import StaticSlots, registered
from nodepool.driver.statemachine import StateMachine
from nodepool.zk.models import Node


class _NoopDelete(StateMachine):
    class State(enum.Enum):
        DONE = "done"

    STEPS: dict = {}
    TERMINAL = frozenset({State.DONE})


class _NeverLaunched(StateMachine):
    """What a create would be: a refusal naming why (see the docstring)."""

    class State(enum.Enum):
        START = "start"
        READY = "ready"

    STEPS = {State.START: "refuse"}
    TERMINAL = frozenset({State.READY})

    def __init__(self, provider_name: str, label_name: str, **kw):
        super().__init__(**kw)
        self.provider_name = provider_name
        self.label_name = label_name

    def refuse(self):
        raise errors.ConfigurationError(
            f"static provider {self.provider_name} launches nothing: label "
            f"{self.label_name} is served by its registered hosts only")


class StaticAdapter(Adapter):
    """Registered nodes of configured hosts; no cloud (module docstring)."""

    launches_nodes = False

    def __init__(self, provider, log=None):
        super().__init__(provider, log)
        #: the slot keeping, once the launcher has called ``register_nodes``
        #: (``nodepool delete --now`` uses an adapter without it)
        self.slots: StaticSlots | None = None

    def stop(self) -> None:
        if self.slots is not None:
            self.slots.stop()
        super().stop()

    def create_machine(self, spec):
        return _NeverLaunched(self.provider.name, spec.label.name)

    def delete_machine(self, external_id, immediate=False):
        return _NoopDelete()

    def list_instances(self):
        return [Instance(external_id=n.name)
                for pool in self.provider.pools.values() for n in pool.nodes]

    # -- registered nodes ----------------------------------------------------
    def register_nodes(self, board: NodeBoard) -> None:
        if self.slots is not None:
            raise RuntimeError(
                f"static provider {self.provider.name} already registering")
        self.slots = StaticSlots(self.provider, board)
        self.slots.start()

    def node_deleted(self, node: Node) -> None:
        if self.slots is not None:
            self.slots.wake()   # re-register the freed slot soon

    def has_capacity_now(self, pool, request,
                         nodes: Callable[[], Iterable[Node]]) -> bool:
        if self.slots is None:
            return False        # nothing registered, nothing to hand out
        return self.slots.has_capacity_now(pool, request, nodes)

    def owns(self, node: Node) -> bool:
        """Only the slots the static driver registered: nodes a cloud
        driver launched under this provider name are never deregistered
        (their instances would keep running without a record)."""
        return registered(node)
