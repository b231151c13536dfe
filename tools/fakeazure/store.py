"""In-memory ARM state: resources by id, and the operations that change them.

One ``RLock`` (``Store.lock``) guards everything here.  The HTTP layer takes
it for the whole of a request, so a handler never sees a half-applied change
and handlers need no locking of their own; they never sleep while holding it.

Time only moves in :meth:`Store.settle`, called before every request: an
operation whose deadline has passed is completed then.  A VM create that
"takes" 2 s therefore needs no timer thread, concurrent creates overlap
naturally, and nothing changes between two requests that a client could
observe.  Completed operations are kept for ``OPERATION_RETENTION`` seconds so
late pollers still get an answer, then forgotten (polling them gives 404, as
in Azure after the operation record expires).

Failure story: a handler raises :class:`ArmError`; the server turns it into
the ARM error envelope ``{"error": {"code", "message"}}`` with its status.
"""

from __future__ import annotations

import copy
import datetime
import heapq
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# Azure keeps operation status records for a while; 10 minutes is plenty for
# any poller and bounds memory in long benchmarks.
OPERATION_RETENTION = 600.0


class ArmError(Exception):
    """An ARM error reply: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str,
                 target: Optional[str] = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def utcnow_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def norm_location(location: str) -> str:
    """``"West US"`` and ``"westus"`` name the same region."""
    return location.replace(" ", "").lower()


def group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def resource_id(subscription: str, group: str, provider: str, rtype: str,
                name: str) -> str:
    return (f"{group_id(subscription, group)}/providers/{provider}/"
            f"{rtype}/{name}")


def id_part(rid: str, segment: str) -> Optional[str]:
    """The value after ``segment`` in a resource id (case-insensitive)."""
    parts = rid.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == segment.lower():
            return parts[i + 1]
    return None


def not_found(rid: str) -> ArmError:
    group = id_part(rid, "resourceGroups") or ""
    parts = rid.strip("/").split("/")
    kind = "/".join(parts[-3:]) if len(parts) >= 3 else rid
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{kind}' under resource group '{group}' "
                    "was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix")


@dataclass(eq=False)
class Operation:
    """One long-running operation, as reported by its status monitor.

    ``complete`` applies the operation's effect to the store when its
    deadline passes; it may set ``error`` to make the operation fail.  An
    ``error`` set before completion (an injected failure) is passed on.
    """
    provider: str
    location: str
    resource_id: str
    kind: str
    due: float
    complete: Callable[["Operation"], None]
    error: Optional[dict] = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "InProgress"
    start_time: str = field(default_factory=utcnow_iso)
    end_time: Optional[str] = None
    ended: float = 0.0

    def status_body(self) -> dict:
        body: dict[str, Any] = {"name": self.id, "status": self.status,
                                "startTime": self.start_time}
        if self.end_time:
            body["endTime"] = self.end_time
        if self.status == "Failed" and self.error:
            body["error"] = self.error
        return body


class Store:
    """Resources keyed by lower-cased id, plus pending/finished operations."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._resources: dict[str, dict] = {}
        self._ops: dict[str, Operation] = {}
        self._due: list[tuple[float, int, Operation]] = []
        self._finished: deque[Operation] = deque()
        self._latest: dict[str, Operation] = {}
        self._seq = 0

    # -- resources ---------------------------------------------------------
    @staticmethod
    def key(rid: str) -> str:
        return rid.rstrip("/").lower()

    def get(self, rid: str) -> Optional[dict]:
        return self._resources.get(self.key(rid))

    def require(self, rid: str) -> dict:
        body = self.get(rid)
        if body is None:
            raise not_found(rid)
        return body

    def put(self, body: dict) -> dict:
        self._resources[self.key(body["id"])] = body
        return body

    def remove(self, rid: str) -> Optional[dict]:
        return self._resources.pop(self.key(rid), None)

    def of_type(self, rtype: str, scope: str = "") -> list[dict]:
        """Resources of ARM ``type`` whose id starts with ``scope``."""
        rtype, scope = rtype.lower(), self.key(scope)
        return [body for key, body in self._resources.items()
                if body.get("type", "").lower() == rtype
                and (not scope or key.startswith(scope + "/"))]

    def all(self) -> list[dict]:
        return list(self._resources.values())

    def snapshot(self) -> dict[str, list[dict]]:
        """Deep copies grouped by the last segment of the type."""
        out: dict[str, list[dict]] = {}
        for body in self._resources.values():
            short = body.get("type", "").split("/")[-1]
            out.setdefault(short, []).append(copy.deepcopy(body))
        return out

    # -- operations --------------------------------------------------------
    def begin(self, op: Operation) -> Operation:
        self._ops[op.id] = op
        self._latest[self.key(op.resource_id)] = op
        self._seq += 1
        heapq.heappush(self._due, (op.due, self._seq, op))
        return op

    def operation(self, op_id: str) -> Optional[Operation]:
        return self._ops.get(op_id.lower()) or self._ops.get(op_id)

    def latest_operation(self, rid: str) -> Optional[Operation]:
        """The most recent operation started on ``rid``, if still known."""
        return self._latest.get(self.key(rid))

    def cancel(self, op: Operation) -> None:
        """Mark a pending operation Canceled (a create preempted by delete)."""
        if op.status == "InProgress":
            op.status = "Canceled"
            op.error = {"code": "OperationPreempted",
                        "message": "Operation execution has been preempted "
                                   "by a more recent operation."}
            self._finish(op)

    def pending(self, kind: str) -> int:
        return sum(1 for _, _, op in self._due
                   if op.kind == kind and op.status == "InProgress")

    def settle(self) -> None:
        """Complete every operation whose deadline has passed."""
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            _, _, op = heapq.heappop(self._due)
            if op.status != "InProgress":
                continue
            op.complete(op)
            op.status = "Failed" if op.error else "Succeeded"
            self._finish(op)
        while self._finished and now - self._finished[0].ended > \
                OPERATION_RETENTION:
            old = self._finished.popleft()
            self._ops.pop(old.id, None)
            if self._latest.get(self.key(old.resource_id)) is old:
                del self._latest[self.key(old.resource_id)]

    def _finish(self, op: Operation) -> None:
        op.end_time = utcnow_iso()
        op.ended = self.clock()
        self._finished.append(op)
