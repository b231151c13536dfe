"""The Node record: ``/nodepool/nodes/<seq10>`` (zookeeper.md §5, §6.2).

``NODE_SCHEMA`` is the declared shape of every key (``schema.py``); a node
that does not fit it is quarantined by the stores.  It is lenient about the
shapes other writers use: a bare string ``type`` becomes a one-item list,
``hold_expiration`` written as a string is coerced to an int (non-numeric →
0, i.e. no expiry), a missing ``connection_port`` falls back to the legacy
``ssh_port`` and then 22, and every optional key may be null.
Writing is strict about the shape upstream readers expect: every key of §5
is present (null where unknown), ``ssh_port`` mirrors ``connection_port`` and
``node_properties`` is ``{}`` when empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import schema as s
from .record import ZnodeRecord

__all__ = ["NodeState", "Node"]


class NodeState:
    """Node states of zookeeper.md §6.2 (strings on the wire)."""

    INIT = "init"
    BUILDING = "building"
    TESTING = "testing"  # legacy: read, never written
    READY = "ready"
    IN_USE = "in-use"
    USED = "used"
    HOLD = "hold"
    DELETING = "deleting"
    FAILED = "failed"
    ABORTED = "aborted"
    DELETED = "deleted"
    ALL = frozenset({INIT, BUILDING, TESTING, READY, IN_USE, USED, HOLD,
                     DELETING, FAILED, ABORTED, DELETED})


def _as_int_or_zero(value: Any) -> int | None:
    """``hold_expiration`` coercion: None stays None, garbage means 0."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


NODE_SCHEMA = s.Schema("node", {
    "state": s.state_of(NodeState.ALL),
    "state_time": s.TIME,
    "created_time": s.TIME,
    "provider": s.STRING,
    "pool": s.STRING,
    "type": s.LABELS,
    "allocated_to": s.STRING,
    "launcher": s.STRING,
    "cloud": s.STRING,
    "region": s.STRING,
    "az": s.STRING,
    "host_id": s.STRING,
    "external_id": s.EXTERNAL_ID,
    "hostname": s.STRING,
    "interface_ip": s.STRING,
    "public_ipv4": s.STRING,
    "private_ipv4": s.STRING,
    "public_ipv6": s.STRING,
    "connection_type": s.STRING,
    "connection_port": s.PORT,
    "ssh_port": s.PORT,
    "username": s.STRING,
    "python_path": s.STRING,
    "shell_type": s.STRING,
    "host_keys": s.STRINGS,
    "image_id": s.STRING,
    "resources": s.NUMBERS,
    "attributes": s.OBJECT,
    "tenant_name": s.STRING,
    "requestor": s.STRING,
    "slot": s.INTEGER,
    "driver_data": s.ANY,
    "node_properties": s.OBJECT,
    "comment": s.STRING,
    "user_data": s.ANY,
    "hold_job": s.STRING,
    "hold_expiration": _as_int_or_zero,   # zookeeper.md §5: lenient
})


@dataclass(eq=False, kw_only=True)
class Node(ZnodeRecord):
    """One node.  Attribute names are the JSON keys; ``id`` is the znode
    name; ``lock`` is the kazoo lock while we hold it."""

    STATES: ClassVar[frozenset[str]] = NodeState.ALL
    SCHEMA: ClassVar[s.Schema] = NODE_SCHEMA
    DERIVED_KEYS: ClassVar[tuple[str, ...]] = ("ssh_port",)

    state: str | None = None
    state_time: float | None = None
    created_time: float | None = None
    provider: str | None = None
    pool: str | None = None
    type: list = field(default_factory=list)
    allocated_to: str | None = None
    launcher: str | None = None
    cloud: str | None = None
    region: str | None = None
    az: str | None = None
    host_id: str | None = None
    external_id: Any = None
    hostname: str | None = None
    interface_ip: str | None = None
    public_ipv4: str | None = None
    private_ipv4: str | None = None
    public_ipv6: str | None = None
    connection_type: str | None = None
    connection_port: Any = 22
    username: str | None = "zuul"
    python_path: str | None = None
    shell_type: str | None = None
    host_keys: list = field(default_factory=list)
    image_id: str | None = None
    resources: dict | None = None
    attributes: dict | None = None
    tenant_name: str | None = None
    requestor: str | None = None
    slot: int | None = None
    driver_data: Any = None
    node_properties: dict | None = None
    comment: str | None = None
    user_data: Any = None
    hold_job: str | None = None
    hold_expiration: int | None = None

    # ``ssh_port`` is the legacy name of ``connection_port``; one value.
    @property
    def ssh_port(self) -> Any:
        return self.connection_port

    @ssh_port.setter
    def ssh_port(self, value: Any) -> None:
        self.connection_port = value

    @property
    def label(self) -> str | None:
        """The first (usually only) label, for log lines."""
        return self.type[0] if self.type else None

    def _load(self, data: dict) -> None:
        if "connection_port" not in data:
            data = dict(data)
            data["connection_port"] = data.get("ssh_port", 22)
        super()._load(data)

    def to_dict(self) -> dict:
        data = {}
        for key in self.json_keys():
            data[key] = getattr(self, key)
            if key == "connection_port":
                data["ssh_port"] = self.connection_port
        data["node_properties"] = self.node_properties or {}
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    def set_state(self, state: str, now: float | None = None) -> None:
        """Change state; the first change also fixes ``created_time``."""
        super().set_state(state, time.time() if now is None else now)
        if self.created_time is None:
            self.created_time = self.state_time

    def __str__(self) -> str:
        return f"<Node {self.id} {self.state} {self.provider}>"
