"""State machines that create and delete cloud instances in small steps.

A machine declares an ``Enum`` of states and maps every non-terminal state to
one step method.  ``advance()`` runs the step for the current state; a step
returns the next state, or the same state to mean "still waiting".  A step
must never block on a cloud call: slow calls are submitted to the adapter's
create pool (or delete batcher) and the step checks the returned future on a
later call.

Failures are exceptions from ``nodepool.driver.errors``; the runner in the
launcher (not the machine) logs transitions, enforces launch/boot timeouts,
and decides between retry, abort and failure.

A subclass may add states to its base's: each class declares the steps of
its own states (``STEPS``) and its own terminal states, and ``advance``
reads them along the class hierarchy.  That is how the framework bases of
``nodepool.driver.machines`` own the states every cloud shares (submit the
call, read its answer) while a driver's machine declares only its cloud's.

Contract for create machines: ``external_id`` is set as soon as the cloud
has named the instance (the runner persists it to ZooKeeper before the node
becomes ready, so a crash cannot leak it); ``instance`` is set when the
machine reaches its terminal state ``READY``.  Every created resource
carries ``LaunchSpec.metadata`` (the node id and installation tags): a
crash before the id is persisted is recovered by
``Adapter.find_instances(node_id)``.
Contract for delete machines: reaching the terminal state means the
instance is gone; a cloud "not found" counts as gone.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from nodepool.driver import installation as installation_tag
from nodepool.driver.instance import Instance

_log = logging.getLogger("nodepool.driver")


class StateMachine:
    """Base class: subclasses define ``State``, ``STEPS`` and ``TERMINAL``.

    >>> class Create(StateMachine):
    ...     class State(enum.Enum):
    ...         START = 1
    ...         READY = 2
    ...     STEPS = {State.START: "start"}
    ...     TERMINAL = {State.READY}
    ...     def start(self):
    ...         return self.State.READY
    """

    State: ClassVar[type[enum.Enum]]
    STEPS: ClassVar[Mapping[Any, str]] = {}
    TERMINAL: ClassVar[frozenset] = frozenset()
    #: the first state; None: the first member of ``State``
    INITIAL: ClassVar[Any] = None
    # STEPS and TERMINAL of the class and its bases (__init_subclass__)
    _steps: ClassVar[Mapping[Any, str]] = {}
    _terminal: ClassVar[frozenset] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        steps: dict[Any, str] = {}
        terminal: set = set()
        for klass in reversed(cls.__mro__):
            steps.update(vars(klass).get("STEPS", {}))
            terminal |= vars(klass).get("TERMINAL", frozenset())
        cls._steps, cls._terminal = steps, frozenset(terminal)

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.state = self.INITIAL if self.INITIAL is not None \
            else next(iter(self.State))
        self.state_time = clock()
        self.external_id: Any = None
        self.instance: Instance | None = None

    @property
    def complete(self) -> bool:
        return self.state in self._terminal

    def advance(self) -> bool:
        """Run one step; return True once the machine is complete."""
        if self.complete:
            return True
        step = getattr(self, self._steps[self.state])
        new_state = step()
        if new_state is None:
            raise TypeError(f"{type(self).__name__}.{step.__name__} "
                            "returned no state")
        if new_state != self.state:
            self.state = new_state
            self.state_time = self.clock()
        return self.complete


def launch_token(node_id: str, attempt: int,
                 installation: str | None = None) -> str:
    """The deterministic create token of one launch attempt of a node.

    Clouds bound their idempotency tokens (EC2: 64 ASCII characters), and
    node ids are not ours to bound, so the pair is hashed.  The
    installation is hashed in too: another installation on the same
    account has a node of the same id, and EC2 answers a token it has seen
    with the instance it made for it.

    >>> launch_token("0000000001", 1) == launch_token("0000000001", 1)
    True
    >>> launch_token("0000000001", 1, "a") == launch_token("0000000001", 1,
    ...                                                    "b")
    False
    >>> len(launch_token("x" * 500, 3)) <= 64
    True
    """
    text = f"np{node_id}-{attempt}"
    if installation:
        text = f"{installation}/{text}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"np-{digest[:40]}"


@dataclass(frozen=True)
class RequestInfo:
    """What of the node request an adapter may use (dynamic tags)."""

    id: str | None = None
    labels: tuple[str, ...] = ()
    requestor: str | None = None
    requestor_data: Any = None
    relative_priority: int = 0
    event_id: str | None = None
    created_time: float | None = None
    tenant_name: str | None = None

    def format_vars(self) -> dict:
        return {"request": self}


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an adapter needs to create one node's instance."""

    node_id: str
    hostname: str
    provider_name: str
    pool: Any                    # nodepool.config Pool
    label: Any                   # nodepool.config PoolLabel
    az: str | None = None
    image_external_id: str | None = None   # diskimage upload id, if any
    request: RequestInfo = field(default_factory=RequestInfo)
    attempt: int = 1
    #: idempotency token of this attempt's create call (``launch_token``);
    #: recorded in the node's ``driver_data`` before the call is made, so a
    #: repeated call of the same attempt names the same instance
    client_token: str | None = None
    #: this installation's id (``nodepool.zk.installation``); None only
    #: outside a launcher (tools, unit tests): nothing is tagged then
    installation: str | None = None

    def render(self, setting: str) -> dict[str, str]:
        """The label's mapping ``setting`` (``dynamic-tags``,
        ``dynamic-instance-properties``) with every value formatted over
        the request (``{request.id}``, ...).  A value that does not format
        is logged and left out: it never fails the launch."""
        out: dict[str, str] = {}
        for key, template in (self.label.settings.get(setting)
                              or {}).items():
            try:
                out[str(key)] = str(template).format(
                    **self.request.format_vars())
            except Exception as e:
                _log.warning("Node %s: %s %r=%r not rendered: %r",
                             self.node_id, setting, key, template, e)
        return out

    @property
    def metadata(self) -> dict[str, str]:
        """Tags put on every created resource (leak detection): upstream's
        three, and our installation's id (``nodepool.driver.installation``)
        so that another installation sharing the account and the provider
        name leaves them alone."""
        tags = {"nodepool_node_id": self.node_id,
                "nodepool_pool_name": self.pool.name,
                "nodepool_provider_name": self.provider_name}
        if self.installation:
            tags[installation_tag.TAG] = self.installation
        return tags
