"""Top-level diskimages: reference checks and parent-chain resolution.

Checks (config.md §8.2 items 3 and 4): names are unique, every ``parent``
exists (abstract parents are fine, and a parent may be defined after its
child), and no parent chain loops back on itself.  Each problem is reported
at the offending key; the checks tolerate entries that failed the schema.

Resolution: an entry starts from the values of its parent chain and its own
keys override them (``name``, ``abstract`` and ``parent`` are never
inherited), except that ``env-vars`` are merged key by key and ``elements``
lists are concatenated, so a child adds to what it inherits.  Secure-file
``env-vars`` are merged afterwards, into the named entry only.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from nodepool.config.drivers.common import entries, text
from nodepool.config.errors import Issue
from nodepool.config.model import DiskImage
from nodepool.config.names import duplicates

__all__ = ["check_diskimages", "resolve_diskimages"]

_OWN_ONLY = ("name", "abstract", "parent")
_LAUNCHER_KEYS = ("username", "python-path", "shell-type", "env-vars")


def check_diskimages(raw: Any) -> list[Issue]:
    issues = duplicates(raw, ("diskimages",), "diskimage")
    first: dict[str, int] = {}
    for index, entry in entries(raw):
        name = text(entry.get("name"))
        if name is not None:
            first.setdefault(name, index)
    parents: dict[str, str | None] = {}
    for index, entry in entries(raw):
        name = text(entry.get("name"))
        if name is not None and first[name] == index:
            parents[name] = text(entry.get("parent"))
    for index, entry in entries(raw):
        parent = text(entry.get("parent"))
        if parent is not None and parent not in first:
            issues.append(Issue(("diskimages", index, "parent"),
                                f"parent diskimage '{parent}' is not "
                                "defined"))
    for name, index in first.items():
        chain = _cycle(name, parents)
        if chain:
            issues.append(Issue(("diskimages", index, "parent"),
                                "parent chain is cyclic: "
                                + " -> ".join(chain)))
    return issues


def _cycle(name: str, parents: Mapping[str, str | None]) -> list[str]:
    """The loop through ``name`` (``[a, b, a]``), or ``[]`` if none."""
    chain = [name]
    current = parents.get(name)
    while current is not None and current in parents:
        chain.append(current)
        if current == name:
            return chain
        if current in chain[:-1]:
            return []  # a loop further up that does not include ``name``
        current = parents.get(current)
    return []


def _inherit(base: dict, own: Mapping[str, Any]) -> dict:
    """Own values override the parent's; env-vars merge, elements extend."""
    result = {**base, **own}
    if "env-vars" in base and "env-vars" in own:
        result["env-vars"] = {**base["env-vars"], **own["env-vars"]}
    if "elements" in base and "elements" in own:
        result["elements"] = list(base["elements"]) + list(own["elements"])
    return result


def resolve_diskimages(raw: list[dict],
                       secure_env: Mapping[str, Mapping[str, str]]
                       ) -> dict[str, DiskImage]:
    """Build every top-level diskimage; the data must have passed checks."""
    by_name = {entry["name"]: entry for entry in raw}
    merged: dict[str, dict] = {}

    def values(name: str) -> dict:
        if name not in merged:
            own = by_name[name]
            parent = own.get("parent")
            base = dict(values(parent)) if parent else {}
            for key in _OWN_ONLY:
                base.pop(key, None)
            merged[name] = _inherit(base, own)
        return merged[name]

    result = {}
    for name, own in by_name.items():
        data = values(name)
        env_vars = dict(data.get("env-vars", {}))
        env_vars.update(secure_env.get(name, {}))
        result[name] = DiskImage(
            name=name,
            abstract=bool(own.get("abstract", False)),
            parent=own.get("parent"),
            username=data.get("username", "zuul"),
            python_path=data.get("python-path", "auto"),
            shell_type=data.get("shell-type"),
            env_vars=env_vars,
            settings={key: copy.deepcopy(value) for key, value in data.items()
                      if key not in _OWN_ONLY + _LAUNCHER_KEYS},
        )
    return result
