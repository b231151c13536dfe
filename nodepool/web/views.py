"""The list endpoints of cli.md §3, built with the CLI's own tables.

Each view turns the launcher's ZooKeeper caches into a
:class:`nodepool.tables.Table`, the same builders ``nodepool list --detail``,
``request-list`` and ``image-list`` print, so the web app and the CLI
cannot drift apart.  The only difference is the source: the web app reads
the launcher's watch caches (image uploads are not cached and are read
directly), where the CLI reads ZooKeeper afresh.

Failure story: a ZooKeeper error while reading propagates to the server,
which answers 500 without the error text; the launcher itself is not
affected.  A ``?fields=`` key the table lacks raises ``UnknownField``,
answered 400 with its one-line message.

Threads: each view runs on a web server worker thread, under the response
cache's one lock (``cache.py``: one generation at a time, whatever the key);
it keeps no state.  Its reads go to the watch caches -- nodes and requests
are lazy, so changed ones are read from ZooKeeper and waited for on this
thread -- and, for image uploads, straight to ZooKeeper; no launcher thread
waits on a view.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from nodepool import tables
from nodepool.escaping import escape_controls

__all__ = ["TABLE_VIEWS", "UnknownField", "render_table"]


class UnknownField(ValueError):
    """A ``?fields=`` key the table does not have (answered 400)."""


def node_list(launcher, query: dict[str, list[str]]) -> tables.Table:
    zk = launcher.zk
    wanted = query.get("node_id", [None])[0]
    nodes = [n for n in zk.iter_nodes(cached=True)
             if wanted is None or n.id == wanted]
    pairs = [(node, zk.is_locked(node, cached=True)) for node in nodes]
    return tables.node_table(pairs, time.time(), detail=True)


def request_list(launcher, query: dict[str, list[str]]) -> tables.Table:
    """``?detail`` adds why each request waits (``request-list --detail``)."""
    zk = launcher.zk
    requests = zk.iter_requests(cached=True)
    if "detail" not in query:
        return tables.request_table(requests)
    return tables.request_table(
        requests, zk.waits_by_request(cached=True, requests=requests),
        time.time())


def label_list(launcher, query: dict[str, list[str]]) -> tables.Table:
    labels: set[str] = set()
    for component in launcher.zk.iter_pool_components(cached=True):
        labels.update(component.supported_labels or [])
    return tables.label_table(labels)


def image_list(launcher, query: dict[str, list[str]]) -> tables.Table:
    return tables.image_table(launcher.zk.iter_image_uploads(), time.time())


TABLE_VIEWS: dict[str, Callable[..., tables.Table]] = {
    "/node-list": node_list,
    "/request-list": request_list,
    "/label-list": label_list,
    "/image-list": image_list,
}


def render_table(table: tables.Table, as_json: bool,
                 query: dict[str, list[str]]) -> tuple[bytes, str]:
    """(body, content type): JSON rows, or the text table restricted to
    ``?fields=`` (JSON keys, comma-separated; ignored for JSON).  Raises
    :class:`UnknownField` naming the first key the table does not have."""
    if as_json:
        return (json.dumps(table.to_json()).encode("utf-8"),
                "application/json")
    fields = [f.strip() for value in query.get("fields", [])
              for f in value.split(",") if f.strip()]
    known = table.keys()
    for name in fields:
        if name not in known:
            raise UnknownField(
                f"Unknown field '{escape_controls(name)}' in ?fields=; "
                f"this table's fields are: {', '.join(known)}")
    text = table.to_text(fields or None) + "\n"
    return text.encode("utf-8"), "text/plain; charset=UTF-8"
