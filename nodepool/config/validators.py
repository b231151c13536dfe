"""Voluptuous building blocks that report *every* error.

Plain voluptuous already collects errors across the keys of a mapping, but a
list schema gives up at the first entry with a nested error, and its
``Exclusive``/``Inclusive`` markers cannot express "exactly one of".  The
validators here fill those gaps while keeping voluptuous wording
(``required key not provided``, ``extra keys not allowed``, ``expected
int``), so a bad config is reported in full in one run:

- ``ListOf(item)``: validates every entry, errors carry the entry's index.
- ``Struct(keys, exactly_one=..., at_most_one=..., at_least_one=...,
  checks=...)``: a closed mapping (unknown keys are errors) plus group rules;
  the group rules still run when some key has a type error.
- ``Choice``, ``StrOrList``, ``StrOr``: small scalar rules.
- ``Int``, ``PositiveInt``, ``Port``, ``PositiveFloat``, ``Rate``: numbers
  whose value is checked too (config.md §8.1 plus this project's
  semantic checks, doc/source/configuration.rst).

Types are strict, as in upstream's schema: ``Int`` rejects strings and
floats, ``str`` rejects ints, ``float`` rejects ints, and nothing accepts an
explicit null unless the rule says so.  Stricter than upstream: a YAML
boolean is not a number (``max-servers: true`` is an error, where
upstream's checker takes it as 1), and a rate, timeout or port must be a
value the launcher can use (finite, in range), so a file that validates
never fails later in the daemon.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Iterable, Sequence

import voluptuous as vol

from nodepool.config.errors import Issue, Path

__all__ = ["Choice", "Int", "ListOf", "Port", "PositiveFloat", "PositiveInt",
           "Rate", "StrOr", "StrOrList", "Struct", "issues_from", "run"]

Check = Callable[[dict], Iterable[vol.Invalid]]

NOT_A_NUMBER = "expected {}, got a boolean"


def _schema(validator: Any) -> vol.Schema:
    return validator if isinstance(validator, vol.Schema) else vol.Schema(
        validator)


def _errors_of(exc: vol.Invalid) -> list[vol.Invalid]:
    if isinstance(exc, vol.MultipleInvalid):
        return list(exc.errors)
    return [exc]


class ListOf:
    """A list whose entries must all match ``item``; every entry is checked."""

    def __init__(self, item: Any) -> None:
        self.item = _schema(item)

    def __call__(self, data: Any) -> Any:
        if not isinstance(data, list):
            raise vol.Invalid("expected a list")
        errors: list[vol.Invalid] = []
        for index, value in enumerate(data):
            try:
                self.item(value)
            except vol.Invalid as exc:
                for err in _errors_of(exc):
                    err.prepend([index])
                    errors.append(err)
        if errors:
            raise vol.MultipleInvalid(errors)
        return data


class Struct:
    """A closed mapping with optional group rules and extra checks.

    Group rules name their members in the order config.md lists them; an
    error for a group with no member present is reported at the first
    member, one for a group with too many members at the first member set.
    ``checks`` receive the raw mapping and yield ``vol.Invalid`` errors with
    paths relative to it; they run only on a mapping.
    """

    def __init__(self, keys: dict, *,
                 exactly_one: Sequence[Sequence[str]] = (),
                 at_most_one: Sequence[Sequence[str]] = (),
                 at_least_one: Sequence[Sequence[str]] = (),
                 checks: Sequence[Check] = ()) -> None:
        self.keys = keys
        self.schema = vol.Schema(keys, extra=vol.PREVENT_EXTRA)
        self.exactly_one = [tuple(g) for g in exactly_one]
        self.at_most_one = [tuple(g) for g in at_most_one]
        self.at_least_one = [tuple(g) for g in at_least_one]
        self.checks = list(checks)

    def __call__(self, data: Any) -> Any:
        errors: list[vol.Invalid] = []
        try:
            self.schema(data)
        except vol.Invalid as exc:
            errors.extend(_errors_of(exc))
        if isinstance(data, dict):
            errors.extend(self._group_errors(data))
            for check in self.checks:
                errors.extend(check(data))
        if errors:
            raise vol.MultipleInvalid(errors)
        return data

    def _group_errors(self, data: dict) -> list[vol.Invalid]:
        errors = []
        for group in self.exactly_one + self.at_least_one:
            if not any(key in data for key in group):
                kind = ("exactly one" if group in self.exactly_one
                        else "at least one")
                errors.append(vol.RequiredFieldInvalid(
                    f"required key not provided ({kind} of "
                    f"{', '.join(group)})", [group[0]]))
        for group in self.exactly_one + self.at_most_one:
            present = [key for key in group if key in data]
            if len(present) > 1:
                errors.append(vol.Invalid(
                    f"only one of {', '.join(group)} may be set",
                    [present[0]]))
        return errors


class Choice:
    """One of a fixed set of values (``None`` allowed only if listed)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def __call__(self, data: Any) -> Any:
        # Compare with type too: YAML ``true`` must not match a listed 1.
        if not any(type(data) is type(v) and data == v for v in self.values):
            shown = ", ".join("null" if v is None else str(v)
                              for v in self.values)
            raise vol.Invalid(f"not a valid value (expected one of: {shown})")
        return data


def Int(data: Any) -> int:  # noqa: N802 - reads like a type
    """An int; YAML ``true``/``false`` are not numbers here."""
    if isinstance(data, bool):
        raise vol.Invalid(NOT_A_NUMBER.format("int"))
    if not isinstance(data, int):
        raise vol.Invalid("expected int")
    return data


def PositiveInt(data: Any) -> int:  # noqa: N802
    """An int greater than 0 (timeouts: 0 or less would expire at once)."""
    if Int(data) <= 0:
        raise vol.Invalid("expected an int greater than 0")
    return data


def Port(data: Any) -> int:  # noqa: N802
    """A TCP port number, 1 to 65535."""
    if not 1 <= Int(data) <= 65535:
        raise vol.Invalid("expected a port number from 1 to 65535")
    return data


def PositiveFloat(data: Any) -> float:  # noqa: N802
    """A finite float greater than 0 (``zookeeper-timeout``: an int is a
    type error there, as in upstream's schema)."""
    if not isinstance(data, float):
        raise vol.Invalid("expected float")
    if not math.isfinite(data) or data <= 0:
        raise vol.Invalid("expected a finite float greater than 0")
    return data


class Rate:
    """A provider ``rate``: a finite number, 0 or more (0: no limit, as
    upstream's rate limiter reads it).

    ``strings``: numeric strings count too (OpenStack and Azure, where
    upstream coerces with ``float()``); AWS takes an int or a float only.
    """

    def __init__(self, strings: bool = False) -> None:
        self.strings = strings

    def __call__(self, data: Any) -> Any:
        if isinstance(data, bool):
            raise vol.Invalid(NOT_A_NUMBER.format("float"))
        if isinstance(data, (int, float)):
            value = float(data)
        elif self.strings and isinstance(data, str):
            try:
                value = float(data)
            except ValueError:
                raise vol.Invalid("expected float") from None
        else:
            raise vol.Invalid("expected float")
        if not math.isfinite(value) or value < 0:
            raise vol.Invalid("expected a finite number, 0 or more")
        return data


def StrOrList(data: Any) -> Any:  # noqa: N802
    """A string or a list of strings (static ``labels``, ``host-key``)."""
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return ListOf(str)(data)
    raise vol.Invalid("expected str or a list of str")


class StrOr:
    """A string or a mapping validated by ``struct`` (Azure ``network``)."""

    def __init__(self, struct: Struct) -> None:
        self.struct = struct

    def __call__(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        if isinstance(data, dict):
            return self.struct(data)
        raise vol.Invalid("expected str or a dictionary")


def _key_name(part: Hashable) -> Hashable:
    return part.schema if isinstance(part, vol.Marker) else part


def issues_from(exc: vol.Invalid, base: Path = ()) -> list[Issue]:
    """Flatten a voluptuous error into Issues rooted at ``base``."""
    return [Issue(base + tuple(_key_name(p) for p in err.path),
                  err.error_message)
            for err in _errors_of(exc)]


def run(validator: Any, data: Any, base: Path = ()) -> list[Issue]:
    """Validate ``data``; return every problem as an Issue (none: ``[]``)."""
    try:
        _schema(validator)(data)
    except vol.Invalid as exc:
        return issues_from(exc, base)
    return []
