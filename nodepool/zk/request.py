"""The NodeRequest record: ``/nodepool/requests/<prio>-<seq10>``
(zookeeper.md §3, §4, §6.1).

The request id carries its precedence: ``200-0000012345`` has priority
``200`` and sequence ``0000012345``.  :meth:`NodeRequest.sort_key` is the
order in which launchers must consider requests.  ``relative_priority`` is
rewritten by the requester at any time, so the launcher must use the value it
reads after locking (the store re-reads on lock).

``REQUEST_SCHEMA`` is the declared shape of every key (``schema.py``): labels
are strings (a bare string ``node_types`` is refused, not split into
characters), ``relative_priority`` is an integer (null: 0), ``reuse`` a
boolean (null: true); a request that does not fit is quarantined by the
stores, and declined when it is addressed to a pool
(``launcher/unreadable.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import schema as s
from .record import ZnodeRecord

__all__ = ["RequestState", "NodeRequest", "DEFAULT_PRIORITY",
           "MIN_READY_PRIORITY"]

DEFAULT_PRIORITY = "100"
MIN_READY_PRIORITY = "900"


class RequestState:
    """Request states of zookeeper.md §6.1."""

    REQUESTED = "requested"
    PENDING = "pending"
    FULFILLED = "fulfilled"
    FAILED = "failed"
    ALL = frozenset({REQUESTED, PENDING, FULFILLED, FAILED})


REQUEST_SCHEMA = s.Schema("request", {
    "state": s.state_of(RequestState.ALL),
    "state_time": s.TIME,
    "node_types": s.STRINGS,
    "nodes": s.STRINGS,
    "declined_by": s.STRINGS,
    "reuse": s.boolean(True),
    "requestor": s.STRING,
    "requestor_data": s.ANY,
    "provider": s.STRING,
    "relative_priority": s.integer(0),
    "event_id": s.STRING,
    "created_time": s.TIME,
    "tenant_name": s.STRING,
})


@dataclass(eq=False, kw_only=True)
class NodeRequest(ZnodeRecord):
    """One node request.  Attribute names are the JSON keys."""

    STATES: ClassVar[frozenset[str]] = RequestState.ALL
    SCHEMA: ClassVar[s.Schema] = REQUEST_SCHEMA

    state: str | None = None
    state_time: float | None = None
    node_types: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    declined_by: list = field(default_factory=list)
    reuse: bool = True
    requestor: str | None = None
    requestor_data: Any = None
    provider: str | None = None
    relative_priority: int = 0
    event_id: str | None = None
    created_time: float | None = None
    tenant_name: str | None = None

    @property
    def priority(self) -> str | None:
        """The ``<prio>`` prefix of the id (None before submission)."""
        if self.id is None:
            return None
        prio, sep, _ = self.id.partition("-")
        return prio if sep else DEFAULT_PRIORITY

    @property
    def sequence(self) -> str:
        if self.id is None:
            return ""
        return self.id.rpartition("-")[2]

    def sort_key(self) -> tuple[str, int, str]:
        """(priority prefix, relative_priority, sequence): lower first."""
        return (self.priority or "", self.relative_priority, self.sequence)

    def __str__(self) -> str:
        return f"<NodeRequest {self.id} {self.state} {self.node_types}>"
