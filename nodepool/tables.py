"""The operator tables of cli.md: node list, request list, image list,
label list and ``info``, as data first and text second.

A :class:`Table` holds columns (header, JSON key) and rows (dicts with the
JSON keys of cli.md §3, JSON-ready values).  The CLI prints
:meth:`Table.to_text`; the web app serves the same rows as JSON, or as text
restricted to ``?fields=``.  Building rows never talks to ZooKeeper: callers
pass records (and lock flags), so the same code serves cached and uncached
reads, and ``now`` is a parameter so ages are deterministic in tests.
Every text cell passes through :func:`nodepool.escaping.escape_controls`:
a field carrying an escape sequence or a newline is shown escaped, never
interpreted by the terminal; JSON rows carry the values unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from prettytable import PrettyTable

from nodepool.escaping import escape_controls
from nodepool.zk import ImageUpload, Node, NodeRequest

__all__ = ["Table", "format_age", "node_table", "request_table",
           "image_table", "label_table", "info_tables", "NODE_COLUMNS",
           "NODE_DETAIL_COLUMNS", "REQUEST_COLUMNS", "REQUEST_DETAIL_COLUMNS",
           "IMAGE_COLUMNS"]

Column = tuple[str, str]  # (header, JSON key)

NODE_COLUMNS: list[Column] = [
    ("ID", "id"), ("Provider", "provider"), ("Label", "label"),
    ("Server ID", "server_id"), ("Public IPv4", "public_ipv4"),
    ("IPv6", "ipv6"), ("State", "state"), ("Age", "age"),
    ("Locked", "locked")]
NODE_DETAIL_COLUMNS: list[Column] = NODE_COLUMNS + [
    ("Pool", "pool"), ("Hostname", "hostname"),
    ("Private IPv4", "private_ipv4"), ("AZ", "AZ"),
    ("Username", "username"), ("Port", "connection_port"),
    ("Launcher", "launcher"), ("Allocated To", "allocated_to"),
    ("Hold Job", "hold_job"), ("Comment", "comment"),
    ("User Data", "user_data"), ("Driver Data", "driver_data")]
REQUEST_COLUMNS: list[Column] = [
    ("Request ID", "id"), ("Priority", "relative_priority"),
    ("State", "state"), ("Requestor", "requestor"),
    ("Node Types", "node_types"), ("Nodes", "nodes"),
    ("Declined By", "declined_by"), ("Event ID", "event_id")]
# ``request-list --detail`` / ``/request-list?detail``: why each request
# waits (``nodepool.zk.waits``), one entry per pool that says so.
REQUEST_DETAIL_COLUMNS: list[Column] = REQUEST_COLUMNS + [
    ("Waiting For", "wait_kind"), ("Waiting Since", "wait_since"),
    ("Wait Reason", "wait_reason")]
IMAGE_COLUMNS: list[Column] = [
    ("Build ID", "id"), ("Upload ID", "upload_id"),
    ("Provider", "provider"), ("Image", "image"),
    ("Provider Image Name", "external_name"),
    ("Provider Image ID", "external_id"), ("State", "state"),
    ("Age", "age")]
LABEL_COLUMNS: list[Column] = [("Label", "label")]


def format_age(seconds: float | None) -> str:
    """``DD:HH:MM:SS``, each part at least two digits; '' when unknown."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def format_cell(value: Any) -> str:
    """cli.md §1.1: lists joined by ',', null empty, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(v if isinstance(v, str) else json.dumps(v)
                        for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


@dataclass
class Table:
    """Columns plus JSON-ready rows; ``text_formats`` override how a key is
    shown as text (e.g. image ``age`` is epoch seconds in JSON)."""

    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    text_formats: dict[str, Callable[[Any], str]] = field(
        default_factory=dict)

    def to_json(self) -> list[dict]:
        keys = self.keys()
        return [{k: row.get(k) for k in keys} for row in self.rows]

    def keys(self) -> list[str]:
        """The JSON keys of the columns, in order."""
        return [key for _, key in self.columns]

    def to_text(self, fields: Sequence[str] | None = None) -> str:
        """PrettyTable default style, left-aligned; ``fields`` selects
        columns by JSON key (order unchanged; unknown keys are ignored,
        check them against :meth:`keys`)."""
        columns = [c for c in self.columns
                   if not fields or c[1] in fields]
        table = PrettyTable([header for header, _ in columns])
        table.align = "l"
        for row in self.rows:
            table.add_row([self._cell(key, row.get(key))
                           for _, key in columns])
        return table.get_string()

    def _cell(self, key: str, value: Any) -> str:
        formatter = self.text_formats.get(key)
        text = formatter(value) if formatter else format_cell(value)
        return escape_controls(text)


def _port(value: Any) -> Any:
    # Some drivers carry credentials in the port field: never show them.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return "redacted"


def node_row(node: Node, locked: bool, now: float,
             detail: bool = True) -> dict:
    age = None if node.state_time is None else now - node.state_time
    row = {"id": node.id, "provider": node.provider, "label": node.type,
           "server_id": node.external_id, "public_ipv4": node.public_ipv4,
           "ipv6": node.public_ipv6, "state": node.state,
           "age": format_age(age),
           "locked": "locked" if locked else "unlocked"}
    if detail:
        row.update({
            "pool": node.pool, "hostname": node.hostname,
            "private_ipv4": node.private_ipv4, "AZ": node.az,
            "username": node.username,
            "connection_port": _port(node.connection_port),
            "launcher": node.launcher, "allocated_to": node.allocated_to,
            "hold_job": node.hold_job, "comment": node.comment,
            "user_data": node.user_data, "driver_data": node.driver_data})
    return row


def node_table(nodes: Iterable[tuple[Node, bool]], now: float,
               detail: bool = False) -> Table:
    """``nodes``: (node, probably-locked) pairs; rows sorted by id."""
    rows = [node_row(node, locked, now, detail) for node, locked in nodes]
    rows.sort(key=lambda r: r["id"])
    return Table(NODE_DETAIL_COLUMNS if detail else NODE_COLUMNS, rows)


def request_table(requests: Iterable[NodeRequest],
                  waits: dict[str, list] | None = None,
                  now: float | None = None) -> Table:
    """Without ``waits``, upstream's columns; with them (request id -> its
    ``RequestWait`` records), the wait columns too: the kinds, the oldest
    ``since`` (JSON: epoch seconds; text: how long, DD:HH:MM:SS) and the
    texts, each as ``<provider>/<pool>: <text>`` (text: joined by ``; ``)."""
    rows = [{"id": r.id, "relative_priority": r.relative_priority,
             "state": r.state, "requestor": r.requestor,
             "node_types": r.node_types, "nodes": r.nodes,
             "declined_by": r.declined_by, "event_id": r.event_id}
            for r in requests]
    rows.sort(key=lambda r: r["id"])
    if waits is None:
        return Table(REQUEST_COLUMNS, rows)
    for row in rows:
        row.update(_wait_cells(waits.get(row["id"], [])))

    def since_text(epoch: float | None) -> str:
        return "" if epoch is None or now is None else format_age(
            now - epoch)
    return Table(REQUEST_DETAIL_COLUMNS, rows, {
        "wait_since": since_text, "wait_reason": "; ".join})


def _wait_cells(waits: list) -> dict:
    return {"wait_kind": [w.kind for w in waits],
            "wait_since": min((w.since for w in waits), default=None),
            "wait_reason": [f"{w.provider}/{w.pool}: {w.text}"
                            if w.provider else w.text for w in waits]}


def image_table(uploads: Iterable[ImageUpload], now: float) -> Table:
    """Upload records; JSON ``age`` is the epoch second of ``state_time``,
    text shows the age as DD:HH:MM:SS."""
    rows = [{"id": u.build_id, "upload_id": u.id, "provider": u.provider,
             "image": u.image, "external_name": u.external_name,
             "external_id": u.external_id, "state": u.state,
             "age": None if u.state_time is None else int(u.state_time)}
            for u in uploads]
    rows.sort(key=lambda r: (r["id"], r["upload_id"], r["provider"],
                             r["image"]))

    def age_text(epoch: int | None) -> str:
        return "" if epoch is None else format_age(now - epoch)
    return Table(IMAGE_COLUMNS, rows, {"age": age_text})


def label_table(labels: Iterable[str]) -> Table:
    return Table(LABEL_COLUMNS, [{"label": name}
                                 for name in sorted(set(labels))])


def info_tables(uploads: Iterable[ImageUpload],
                nodes: Iterable[Node]) -> tuple[Table, Table]:
    """``nodepool info``: (image data, nodes) of one provider."""
    builds: dict[tuple[str, str], list[str]] = {}
    for upload in uploads:
        builds.setdefault((upload.image, upload.build_id), []).append(
            upload.id)
    image_rows = [{"image": image, "build_id": build,
                   "upload_ids": sorted(ids)}
                  for (image, build), ids in sorted(builds.items())]
    node_rows = sorted(({"id": n.id, "server_id": n.external_id}
                        for n in nodes), key=lambda r: r["id"])
    return (Table([("Image Name", "image"), ("Build ID", "build_id"),
                   ("Upload IDs", "upload_ids")], image_rows),
            Table([("ID", "id"), ("Server ID", "server_id")], node_rows))
