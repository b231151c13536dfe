"""EC2 import tasks, which moto does not have: a store a test seeds.

``ImportSnapshot`` / ``ImportImage`` turn an S3 object into an EBS
snapshot or an AMI; EC2 then lists the task (with the tags given to it at
creation, the only place an upload's tags can go) through
``DescribeImportSnapshotTasks`` / ``DescribeImportImageTasks``.  moto
answers neither (HTTP 500), so the proxy answers them from this store:

* a test adds a finished task with :meth:`ImportTasks.add` (through
  ``POST /_fake/import-tasks``, see ``control.py``, or
  ``LocalAWS.add_import_task``), naming the snapshot or AMI it produced --
  created by the test in moto beforehand, without tags, as EC2 leaves
  them;
* the describe calls list the tasks of the caller's region, all of them
  or those named by ``ImportTaskId.N``, in pages of ``MaxResults`` (100 by
  default) with a ``NextToken``; an unknown id is answered 400
  ``InvalidConversionTaskId.Malformed``, as EC2 does for a task it no
  longer knows;
* ``/_fake/reset`` (moto's reset) empties the store.

The answers are EC2's XML (query protocol, element names from the EC2 API
model), so botocore parses them as it parses EC2's.  Creating tasks
(``ImportSnapshot``/``ImportImage``) stays unanswered (moto's 500): a test
plays the builder by seeding the result.

Thread safety: one lock guards the store; answers are built from a copy.
"""

from __future__ import annotations

import threading
import uuid
from xml.sax.saxutils import escape

from tools.fakeaws.faults import ec2_error_body
from tools.fakeaws.forward import Reply

__all__ = ["ImportTasks", "IMPORT_ACTIONS", "answer_import_call"]

_XML = [("Content-Type", "text/xml;charset=UTF-8")]
_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
IMPORT_ACTIONS = {"DescribeImportSnapshotTasks": "snapshot",
                  "DescribeImportImageTasks": "image"}
PAGE_SIZE = 100


class ImportTasks:
    """Finished import tasks by region, in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: list[dict] = []

    def add(self, doc: dict) -> dict:
        """Store one task; returns it with its ``id`` filled in.

        ``doc``: ``kind`` ("snapshot" or "image"), ``tags`` (mapping),
        ``snapshot_id`` (the snapshot made; an image task's first disk),
        ``image_id`` (image tasks: the AMI made), optional ``id``,
        ``status`` ("completed"), ``description``, ``region``
        ("us-east-1").
        """
        kind = doc.get("kind")
        if kind not in ("snapshot", "image"):
            raise ValueError("kind must be 'snapshot' or 'image'")
        tags = doc.get("tags") or {}
        if not isinstance(tags, dict):
            raise ValueError("tags must be a JSON object")
        prefix = "import-snap-" if kind == "snapshot" else "import-ami-"
        task = {
            "kind": kind,
            "id": str(doc.get("id") or prefix + uuid.uuid4().hex[:17]),
            "region": str(doc.get("region") or "us-east-1"),
            "status": str(doc.get("status") or "completed"),
            "description": str(doc.get("description") or ""),
            "snapshot_id": doc.get("snapshot_id"),
            "image_id": doc.get("image_id"),
            "tags": {str(k): str(v) for k, v in tags.items()},
        }
        with self._lock:
            self._tasks.append(task)
        return dict(task)

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()

    def all(self) -> list[dict]:
        with self._lock:
            return [dict(t) for t in self._tasks]

    def list(self, kind: str, region: str) -> list[dict]:
        with self._lock:
            return [dict(t) for t in self._tasks
                    if t["kind"] == kind and t["region"] == region]


def _text(name: str, value) -> str:
    if value is None:
        return ""
    return f"<{name}>{escape(str(value))}</{name}>"


def _tag_set(tags: dict) -> str:
    items = "".join(f"<item>{_text('key', k)}{_text('value', v)}</item>"
                    for k, v in tags.items())
    return f"<tagSet>{items}</tagSet>"


def _snapshot_task(task: dict) -> str:
    detail = (_text("snapshotId", task["snapshot_id"])
              + _text("status", task["status"]) + _text("format", "RAW"))
    return (f"<item>{_text('importTaskId', task['id'])}"
            f"{_text('description', task['description'])}"
            f"<snapshotTaskDetail>{detail}</snapshotTaskDetail>"
            f"{_tag_set(task['tags'])}</item>")


def _image_task(task: dict) -> str:
    disks = ""
    if task["snapshot_id"]:
        disks = (f"<item>{_text('snapshotId', task['snapshot_id'])}"
                 f"{_text('deviceName', '/dev/sda1')}"
                 f"{_text('status', task['status'])}</item>")
    return (f"<item>{_text('importTaskId', task['id'])}"
            f"{_text('description', task['description'])}"
            f"{_text('imageId', task['image_id'])}"
            f"{_text('status', task['status'])}"
            f"<snapshotDetailSet>{disks}</snapshotDetailSet>"
            f"{_tag_set(task['tags'])}</item>")


def answer_import_call(tasks: ImportTasks, action: str,
                       params: dict[str, list[str]], region: str) -> Reply:
    """The XML answer to one Describe*Import*Tasks call."""
    kind = IMPORT_ACTIONS[action]
    known = tasks.list(kind, region)
    wanted = [v[0] for k, v in sorted(params.items())
              if k.startswith("ImportTaskId.")]
    if wanted:
        by_id = {t["id"]: t for t in known}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            return Reply(400, ec2_error_body(
                "InvalidConversionTaskId.Malformed",
                f"The import task ID '{missing[0]}' is malformed or "
                "does not exist."), list(_XML))
        known = [by_id[i] for i in wanted]
    try:
        start = int((params.get("NextToken") or ["0"])[0])
        size = int((params.get("MaxResults") or [str(PAGE_SIZE)])[0])
    except ValueError:
        return Reply(400, ec2_error_body("InvalidParameterValue",
                                         "bad NextToken or MaxResults"),
                     list(_XML))
    page = known[start:start + max(1, size)]
    render = _snapshot_task if kind == "snapshot" else _image_task
    set_name = ("importSnapshotTaskSet" if kind == "snapshot"
                else "importImageTaskSet")
    token = ""
    if start + len(page) < len(known):
        token = _text("nextToken", start + len(page))
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<{action}Response xmlns="{_NS}">'
            f"<requestId>{uuid.uuid4()}</requestId>"
            f"<{set_name}>{''.join(render(t) for t in page)}</{set_name}>"
            f"{token}</{action}Response>")
    return Reply(200, body.encode(), list(_XML))
