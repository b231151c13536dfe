"""Which unreadable requests a pool worker declines.

A request znode that does not fit the request schema is quarantined by the
ZooKeeper layer (``nodepool/zk/quarantine.py``): routing never sees it, so
it cannot fail, delay or reorder another request.  Left alone, though, its
requester would wait for it forever.  So a pool worker fails the
quarantined requests that are *addressed to it*, the way it declines a
request it cannot serve (zookeeper.md §8.3).

The rule, for the worker of pool ``<pool>`` of provider ``<provider>``: a
quarantined request is addressed to it when its payload is a JSON object
and

1. ``state`` is ``requested`` (a ``pending`` request is someone's to
   handle, ``fulfilled``/``failed`` ones are the requester's to consume);
2. ``declined_by`` does not contain the worker's id;
3. it names us: ``provider`` is the string ``<provider>``, or it asks for
   at least one of the pool's labels -- ``node_types`` is an array with
   one of them among its string items, or is itself one of them as a bare
   string;
4. it does not prefer another provider that has registered pools
   (``provider`` a string naming one): those pools decline it instead, as
   they would serve it (§8.2, rule 1).

Then the worker takes the request lock without waiting, re-reads it, checks
all of the above again and writes ``state: failed``, a fresh ``state_time``
and its id appended to ``declined_by`` -- the keys a declining pool writes,
and nothing else: every other key is kept as read, unknown ones included.
It fails the request at once rather than leaving it ``requested`` until
every registered pool declined: no pool can serve a request nobody can
read, and pools it is not addressed to never decline it.  The reason the
request could not be read (the field, as in the warning) is logged with
the request id.

Never written: a znode that is not a JSON object (invalid JSON, not UTF-8,
an array: nothing in it could be kept), and requests naming none of our
labels nor our provider.  Those stay quarantined -- one warning per
version, counted in the metrics and listed by ``nodepool request-list`` --
for an operator to remove.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["addressed_to"]


def _named_labels(node_types: Any) -> set[str]:
    if isinstance(node_types, str):
        return {node_types}
    if isinstance(node_types, list):
        return {item for item in node_types if isinstance(item, str)}
    return set()


def addressed_to(payload: dict, worker_id: str, provider: str,
                 labels: Iterable[str],
                 other_providers: Iterable[str]) -> bool:
    """Is the unreadable request ``payload`` addressed to this worker?
    ``other_providers``: providers of the other registered pools."""
    if payload.get("state") != "requested":
        return False
    declined = payload.get("declined_by")
    if isinstance(declined, list) and worker_id in declined:
        return False
    preferred = payload.get("provider")
    if isinstance(preferred, str) and preferred == provider:
        return True
    if isinstance(preferred, str) and preferred in set(other_providers):
        return False
    return not _named_labels(payload.get("node_types")).isdisjoint(labels)
