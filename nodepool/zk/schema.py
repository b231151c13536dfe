"""Declared record schemas: what every key of a node, request or component
may hold when it is read from ZooKeeper.

Each record kind declares one :class:`Schema` next to its class (``Node``
in ``node.py``, ``NodeRequest`` in ``request.py``, the components in
``component.py``): a table from JSON key to a *rule*.  A rule is a small
function that takes the decoded value and returns it normalised (``null``
lists become ``[]``, a bare label string becomes a one-item list, ...) or
raises :class:`Mismatch` saying what was expected.  ``Schema.parse`` runs
the rules of the keys a payload has, checks the required keys and the
allowed states, and raises ``BadZnode`` naming the first key that does not
fit -- the stores then quarantine the znode (``store.py``): skipped, logged
once per version, counted, never handed out.

Keys a schema does not declare are not looked at: records keep them in
``extra`` and write them back unchanged (zookeeper.md §11).

The rules accept every shape upstream Nodepool 11 and Zuul 14 write (nulls
for optional keys, a bare string ``type``, ``hold_expiration`` as a string,
``connection_port`` as a string for some drivers) and refuse the shapes that
would break the launcher later: unhashable labels, strings where numbers
are compared or subtracted, numbers that are not finite.

Why not a schema library: the rules run for every znode version a cache
delivers (thousands per second in a burst).  voluptuous took ~100 µs and
jsonschema ~340 µs per node record on this project's reference machine,
against ~10 µs for decoding its JSON; these rules take a few µs and give
the field path in the same words.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from .errors import BadZnode

__all__ = ["Mismatch", "Rule", "Schema", "json_type", "STRING", "TIME",
           "INTEGER", "STRINGS", "LABELS", "OBJECT", "ANY", "PORT",
           "EXTERNAL_ID", "NUMBERS", "boolean", "integer", "state_of"]

Rule = Callable[[Any], Any]
_NONE = type(None)

# Values quoted in messages are cut to this many characters.
_QUOTE_LIMIT = 40


class Mismatch(Exception):
    """A value does not fit its rule: ``expected`` says what would have,
    ``where`` is the position inside the value (``[3]``, ``.cores``)."""

    def __init__(self, expected: str, value: Any, where: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.where = where


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def quote(value: Any) -> str:
    """A short, printable rendering of a value for log lines."""
    text = repr(value)
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT - 3] + "..."
    return text


# -- rules -------------------------------------------------------------------
def STRING(value: Any) -> str | None:
    """A string or null."""
    if value is None or isinstance(value, str):
        return value
    raise Mismatch("a string or null", value)


STRING.fast = frozenset({str, _NONE})


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:       # an integer beyond the float range
        return False


def TIME(value: Any) -> float | int | None:
    """Epoch seconds: a finite number (float range) or null."""
    if value is None or _is_number(value):
        return value
    raise Mismatch("a number or null", value)


def integer(default: int | None) -> Rule:
    """An integer; null becomes ``default``."""
    def rule(value: Any) -> int | None:
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch("an integer" + ("" if default is None else
                                       " or null"), value)
    rule.fast = frozenset({int} if default is not None else {int, _NONE})
    return rule


INTEGER = integer(None)


def boolean(default: bool) -> Rule:
    """``true``/``false``; null becomes ``default``."""
    def rule(value: Any) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise Mismatch("true, false or null", value)
    rule.fast = frozenset({bool})
    return rule


def _strings(value: list) -> list:
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise Mismatch("a string", item, f"[{index}]")
    return value


def STRINGS(value: Any) -> list:
    """An array of strings; null becomes ``[]``."""
    if value is None:
        return []
    if isinstance(value, list):
        return _strings(value)
    raise Mismatch("an array of strings or null", value)


def LABELS(value: Any) -> list:
    """Labels of a node: an array of strings, a bare string (legacy: one
    label) or null (none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return _strings(value)
    raise Mismatch("an array of strings, a string or null", value)


def OBJECT(value: Any) -> dict | None:
    """A JSON object or null."""
    if value is None or isinstance(value, dict):
        return value
    raise Mismatch("an object or null", value)


OBJECT.fast = frozenset({dict, _NONE})


def NUMBERS(value: Any) -> dict | None:
    """An object whose values are finite numbers (quota), or null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Mismatch("an object of numbers or null", value)
    for key, item in value.items():
        if not _is_number(item):
            raise Mismatch("a number", item, f".{key}")
    return value


def ANY(value: Any) -> Any:
    """Opaque to the launcher (driver_data, user_data, requestor_data)."""
    return value


def PORT(value: Any) -> int | str | None:
    """A port: an integer, a string (some drivers) or null."""
    if value is None or isinstance(value, str) or (
            isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Mismatch("an integer, a string or null", value)


PORT.fast = frozenset({int, str, _NONE})


def EXTERNAL_ID(value: Any) -> Any:
    """A cloud id: a string, an object (upstream AWS), an integer or null."""
    if value is None or isinstance(value, (str, dict)) or (
            isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise Mismatch("a string, an object, an integer or null", value)


EXTERNAL_ID.fast = frozenset({str, dict, int, _NONE})


def state_of(states: Iterable[str]) -> Rule:
    """One of ``states`` (a string)."""
    allowed = frozenset(states)

    def rule(value: Any) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        if isinstance(value, str):
            raise Mismatch("a known state", value)
        raise Mismatch("a state string", value)
    return rule


# -- the schema ------------------------------------------------------------
class Schema:
    """The declared shape of one record kind.

    ``rules``: JSON key → rule; ``required``: keys that must be present.
    A rule may carry ``fast``, the set of value types it returns unchanged
    (checked by type without calling it: most keys of most records), and
    ``ANY`` is never called.
    ``parse(data)`` returns {key: normalised value} for the declared keys
    ``data`` has (absent keys are left to the record's defaults) and raises
    ``BadZnode`` (with ``field`` set) for the first key that does not fit.
    """

    def __init__(self, kind: str, rules: dict[str, Rule],
                 required: Iterable[str] = ("state",)) -> None:
        self.kind = kind
        self.rules = dict(rules)
        # key -> (rule, types passed through as they are, or None: all)
        self._table = {k: (r, None if r is ANY else
                           getattr(r, "fast", frozenset()))
                       for k, r in self.rules.items()}
        self.required = tuple(required)
        unknown = [k for k in self.required if k not in self.rules]
        if unknown:
            raise ValueError(f"required keys without a rule: {unknown}")

    def parse(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadZnode(f"payload is {json_type(data)}, not an object")
        for key in self.required:
            if key not in data:
                raise BadZnode(f"field '{key}': missing", field=key)
        table = self._table
        values = {}
        for key, value in data.items():
            entry = table.get(key)
            if entry is None:
                continue
            rule, fast = entry
            if fast is None or type(value) in fast:
                values[key] = value
                continue
            try:
                values[key] = rule(value)
            except Mismatch as exc:
                raise BadZnode(describe(key, exc), field=key) from None
        return values

    def check(self, data: Any) -> str | None:
        """The reason ``data`` does not fit, or None when it does."""
        try:
            self.parse(data)
        except BadZnode as exc:
            return str(exc)
        return None


def describe(key: str, exc: Mismatch) -> str:
    """``field 'node_types[0]': expected a string, got an object``."""
    if exc.expected == "a known state":
        return f"field '{key}': unknown state {quote(exc.value)}"
    return (f"field '{key}{exc.where}': expected {exc.expected}, "
            f"got {json_type(exc.value)}")
