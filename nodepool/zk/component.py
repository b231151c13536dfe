"""Component records, ``/nodepool/components/<kind>/`` (zookeeper.md §8.1).

Components are ephemeral sequential znodes: they vanish with the session
that created them.  The store keeps every component it registered and
re-creates it (at a new path) once a new session is established, so Zuul
keeps seeing our pools after a session loss.  Keys are written sorted and
every update rewrites the whole object; keys we do not know are kept.

Each kind declares its schema (``schema.py``): strings may be null (upstream
registers a pool before it sets ``id``, ``name`` and ``provider_name``),
``priority`` and ``model_api`` are integers, ``supported_labels`` strings,
``state`` one of :class:`ComponentState`.  A component that does not fit is
quarantined by the store: routing never compares a priority it cannot read.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from . import schema as s
from .errors import BadZnode

__all__ = ["ComponentState", "Component", "LauncherComponent",
           "PoolComponent", "MODEL_API"]

# The data-model level this implementation speaks (upstream 11.0.0: 0).
MODEL_API = 0


class ComponentState:
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ALL = frozenset({INITIALIZING, RUNNING, PAUSED, STOPPED})


COMPONENT_SCHEMA = s.Schema("component", {
    "hostname": s.STRING,
    "state": s.state_of(ComponentState.ALL),
    "kind": s.STRING,
    "version": s.STRING,
    "model_api": s.integer(MODEL_API),
})

POOL_SCHEMA = s.Schema("component", {
    **COMPONENT_SCHEMA.rules,
    "id": s.STRING,
    "name": s.STRING,
    "provider_name": s.STRING,
    "supported_labels": s.STRINGS,
    "priority": s.integer(100),
    "paused": s.boolean(False),
})


@dataclass(eq=False, kw_only=True)
class Component:
    """Fields common to every component kind (builders' included)."""

    KIND: ClassVar[str] = ""
    SCHEMA: ClassVar[s.Schema] = COMPONENT_SCHEMA
    # Attributes that are not JSON keys.
    LOCAL: ClassVar[frozenset[str]] = frozenset({"path", "stat", "extra"})

    hostname: str = field(default_factory=socket.gethostname)
    state: str = ComponentState.INITIALIZING
    kind: str = ""
    version: str = ""
    model_api: int = MODEL_API
    path: str | None = None
    stat: Any = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = self.KIND

    def to_dict(self) -> dict:
        data = dict(self.extra)
        for f in fields(self):
            if f.name not in self.LOCAL:
                data[f.name] = getattr(self, f.name)
        return dict(sorted(data.items()))

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict, path: str | None = None):
        values = cls.SCHEMA.parse(data)
        names = {f.name for f in fields(cls)} - cls.LOCAL
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            component = cls(**known)
        except TypeError as exc:  # pragma: no cover - defensive
            raise BadZnode(str(exc)) from exc
        component.path = path
        component.extra = extra
        return component


@dataclass(eq=False, kw_only=True)
class LauncherComponent(Component):
    """One per launcher process."""

    KIND: ClassVar[str] = "launcher"


@dataclass(eq=False, kw_only=True)
class PoolComponent(Component):
    """One per running pool worker; Zuul reads ``supported_labels``."""

    KIND: ClassVar[str] = "pool"
    SCHEMA: ClassVar[s.Schema] = POOL_SCHEMA

    id: str = ""
    name: str = ""
    provider_name: str = ""
    supported_labels: list = field(default_factory=list)
    priority: int = 100
    paused: bool = False


COMPONENT_CLASSES: dict[str, type[Component]] = {
    "launcher": LauncherComponent,
    "pool": PoolComponent,
}
