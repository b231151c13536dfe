"""Base class for JSON objects that live in one znode (nodes, requests).

Three promises every record keeps, because several writers (launchers, Zuul,
the CLI) share each znode:

* **Unknown keys survive.**  Keys a subclass does not declare are kept in
  ``extra`` and written back unchanged (zookeeper.md §11; e.g. Zuul's
  ``span_info``).
* **Writes are conditional.**  A record remembers the ``ZnodeStat`` it was read
  with; the store writes with that version.
* **Conflicts merge instead of clobbering.**  A record also remembers the
  normalised dict it was read as (its *snapshot*).  On a version conflict the
  store re-reads the znode and calls :meth:`ZnodeRecord.merge_onto`, which
  re-applies only the keys this writer changed since it read.  Another
  writer's change to a different key is therefore kept.

Reading never trusts the payload: every subclass declares one ``SCHEMA``
(``schema.py``: the type of every key, the required keys, the allowed
states), :meth:`from_dict` raises ``BadZnode`` naming the first key that does
not fit, and the stores quarantine such znodes (``store.py``).  What the
schema accepts is normalised there too (``null`` lists become ``[]``, ...),
so a record read from ZooKeeper always has the types its class declares.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from .errors import BadZnode
from .schema import Schema

__all__ = ["ZnodeRecord", "decode_payload"]


def decode_payload(data: bytes | None) -> dict | None:
    """Bytes of a znode → dict; ``None`` for an empty znode.

    Raises ``BadZnode`` for anything that is not a single JSON object.
    """
    if not data:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadZnode(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadZnode(f"payload is a {type(value).__name__}, not an object")
    return value


@dataclass(eq=False, kw_only=True)
class ZnodeRecord:
    """Common machinery; subclasses declare their JSON keys as dataclass
    fields (field name == JSON key) and list their states in ``STATES``."""

    STATES: ClassVar[frozenset[str]] = frozenset()
    # The declared shape of the record's keys (each subclass has one).
    SCHEMA: ClassVar[Schema]
    # Keys that are written but derived from other fields (not stored twice).
    DERIVED_KEYS: ClassVar[tuple[str, ...]] = ()

    id: str | None = field(default=None, metadata={"json": False})
    stat: Any = field(default=None, repr=False, metadata={"json": False})
    lock: Any = field(default=None, repr=False, metadata={"json": False})
    # Keys we read but do not understand, written back unchanged.
    extra: dict = field(default_factory=dict, repr=False,
                        metadata={"json": False})

    def __post_init__(self) -> None:
        # JSON of what this object looked like when read (None: never
        # read).  A string, not a deep copy: json.dumps is several times
        # cheaper, and iterating a cache builds thousands of records.
        self._snapshot: str | None = None
        # Or, for a record just decoded from a znode, that znode's payload:
        # normalised into ``_snapshot`` only when a write needs the diff,
        # because most records read from a cache are never written.
        self._snapshot_raw: bytes | None = None

    # -- key list ---------------------------------------------------------
    @classmethod
    def json_keys(cls) -> tuple[str, ...]:
        cached = cls.__dict__.get("_json_keys")
        if cached is None:
            cached = tuple(f.name for f in fields(cls)
                           if f.metadata.get("json", True))
            setattr(cls, "_json_keys", cached)
        return cached

    # -- reading ----------------------------------------------------------
    @classmethod
    def from_dict(cls, id: str | None, data: dict):
        """Build from a decoded payload; ``data`` is not modified."""
        return cls._from_owned(id, copy.deepcopy(data))

    @classmethod
    def _from_owned(cls, id: str | None, data: dict,
                    raw: bytes | None = None):
        """Like :meth:`from_dict` but takes ownership of ``data`` (no copy):
        for payloads just decoded from a znode (``raw``: its bytes)."""
        record = cls(id=id)
        record._load(data)
        if raw is None:
            record.mark_clean()
        else:
            record._snapshot_raw = raw
        return record

    def _load(self, data: dict) -> None:
        """Set every declared key from ``data`` (owned by us afterwards)."""
        values = self.SCHEMA.parse(data)
        known = self.json_keys()
        for f in fields(self):
            if f.name not in known:
                continue
            if f.name in values:
                setattr(self, f.name, values[f.name])
            else:
                setattr(self, f.name, self._default(f))
        skip = set(known) | set(self.DERIVED_KEYS)
        self.extra = {k: v for k, v in data.items() if k not in skip}

    @staticmethod
    def _default(f) -> Any:
        if f.default_factory is not MISSING:
            return f.default_factory()
        return None if f.default is MISSING else f.default

    def clone(self):
        """An independent copy, much cheaper than decoding again.

        Lists and dicts are copied one level deep: callers replace nested
        values rather than editing them in place.
        """
        new = object.__new__(type(self))
        new.__dict__ = {k: (v.copy() if isinstance(v, (list, dict)) else v)
                        for k, v in self.__dict__.items()}
        new.lock = None
        return new

    # -- writing ----------------------------------------------------------
    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.json_keys()}
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode("utf-8")

    def set_state(self, state: str, now: float | None = None) -> None:
        """Change ``state`` and stamp ``state_time`` (every change)."""
        if state not in self.STATES:
            raise ValueError(f"unknown state {state!r}")
        self.state = state
        self.state_time = time.time() if now is None else now

    # -- change tracking --------------------------------------------------
    def mark_clean(self) -> None:
        """Remember the current content as 'what ZooKeeper has'."""
        self._snapshot = json.dumps(self.to_dict())
        self._snapshot_raw = None

    def _snapshot_dict(self) -> dict | None:
        if self._snapshot is not None:
            return json.loads(self._snapshot)
        if self._snapshot_raw is not None:
            payload = decode_payload(self._snapshot_raw) or {}
            return type(self)._from_owned(self.id, payload).to_dict()
        return None

    def changes(self) -> tuple[dict, set]:
        """(keys set or changed since read → new value, keys removed)."""
        current = json.loads(json.dumps(self.to_dict()))
        snapshot = self._snapshot_dict()
        if snapshot is None:
            return current, set()
        changed = {k: v for k, v in current.items()
                   if k not in snapshot or snapshot[k] != v}
        return changed, set(snapshot) - set(current)

    def merge_onto(self, fresh: dict) -> None:
        """Adopt ``fresh`` (a newer payload of the same znode) and re-apply
        this writer's own changes on top of it."""
        changed, removed = self.changes()
        latest = type(self).from_dict(self.id, fresh).to_dict()
        merged = copy.deepcopy(latest)
        merged.update(changed)
        for key in removed:
            merged.pop(key, None)
        self._load(merged)
        # Our changes are still pending relative to the fresh version.
        self._snapshot = json.dumps(latest)

    def load_fresh(self, data: dict, stat: Any) -> None:
        """Replace the content with a fresh read (e.g. after locking)."""
        self._load(data)
        self.stat = stat
        self.mark_clean()
