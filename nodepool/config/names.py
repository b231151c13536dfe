"""Unique names: each name the launcher keys things by means one entry.

Checked (errors at the later entry's ``name``, naming the first one):

- provider names;
- pool names within a provider;
- top-level label names;
- label names within a pool.

Upstream Nodepool accepts duplicates and lets a later entry replace an
earlier one.  That silently throws away what the earlier entry says, and
for providers it is destructive: nodes, locks and leak cleanup go by the
provider's name, so two providers of one name -- say an AWS one and a
static one -- end up running each other's nodes (the static one
deregisters the AWS nodes while their instances keep running).  A pool of
a duplicate name shares its ``<provider>-<pool>`` worker id and its nodes'
``pool`` field with the other, so its quota and labels apply to the
other's nodes; a duplicate label carries two different ``min-ready`` or
instance settings of which only one is used.  So every such duplicate is
an error here (doc/source/configuration.rst says so).  The same name in
different scopes -- one label offered by several pools, one pool name in
several providers -- is how the file is meant to be written and is fine.

The checks read raw, possibly invalid data: entries that are not mappings
or whose ``name`` is not a string are skipped (the schema reports them).
"""

from __future__ import annotations

from typing import Any

from nodepool.config.drivers.common import entries, provider_label, text
from nodepool.config.errors import Issue, Path, format_path

__all__ = ["check_unique_names", "duplicates"]


def duplicates(value: Any, path: Path, kind: str, scope: str = ""
               ) -> list[Issue]:
    """An issue for every entry of the list ``value`` (at ``path``) whose
    ``name`` an earlier entry already has; ``scope`` ends the message's
    first part (" in provider 'x'")."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for index, entry in entries(value):
        name = text(entry.get("name"))
        if name is None:
            continue
        if name in first:
            issues.append(Issue(path + (index, "name"), (
                f"duplicate {kind} '{name}'{scope} (first at "
                f"{format_path(path + (first[name],))})")))
        else:
            first[name] = index
    return issues


def check_unique_names(data: dict) -> list[Issue]:
    issues = duplicates(data.get("labels"), ("labels",), "label")
    issues += duplicates(data.get("providers"), ("providers",), "provider")
    for pindex, provider in entries(data.get("providers")):
        pools_path: Path = ("providers", pindex, "pools")
        issues += duplicates(
            provider.get("pools"), pools_path, "pool",
            f" in provider '{provider_label(provider)}'")
        for index, pool in entries(provider.get("pools")):
            issues += duplicates(pool.get("labels"),
                                 pools_path + (index, "labels"), "label",
                                 " in this pool")
    return issues
