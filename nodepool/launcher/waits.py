"""Why each request waits, as one pool worker sees it, kept in ZooKeeper.

The pool worker tells its ``WaitBook`` what it sees: during routing a
deferred request gets a ``Reason`` (``note``), a request routed without
one is ``seen``; a decline that leaves the request ``requested`` is
remembered (``declined``) while the request stays so; at the end of a
pass (``end_pass``) the accepted requests' reasons are read off their
handlers (at quota, waiting for a static slot, nodes being built).  The
book then writes what changed to ``/nodepool/request-waits``
(``nodepool.zk.waits``): only a reason that differs from the one written,
and only once the request has waited ``publish_after`` seconds (a request
served at once never costs a write); a record goes when its request is
served, failed, gone, taken by another pool or no longer waits here.
Whether a held request still waits is asked of the request cache only
when the cache holds another version of it than the one last asked (a
change was notified, or it was never asked): unchanged requests cost no
read per pass.
``since`` is when the current *kind* of reason first held (the text may
change under it: "2 free" then "1 free" is the same wait).

Writes are bounded, whatever the backlog: at most ``writes_per_s`` (100)
a second, in bursts of as many, and a written record whose reason keeps
its kind is rewritten with its new specifics at most every ``refresh``
(5 s).  A new record or a change of kind goes first, in the pass's
processing order; a refresh takes what budget is left.  What the budget
does not cover this pass stays due and is written on a later one.  (A
pool at quota with ten thousand requests queued behind it changes the
request they wait behind, and its "N free", many times a second: a write
per record per change was thousands of writes a second, which took the
CPU the launcher needed to catch up.)  Deletes are not budgeted: each
follows a request served, failed or gone.

A ``Reason`` is a machine-readable ``kind`` (``nodepool.zk.waits.KINDS``),
one line of ``text`` with the specifics, and ``details`` (the same
specifics as JSON).  The builders below make every kind.

Queue time: a request this worker fulfils (min-ready requests aside) is
reported per label -- seconds from its ``created_time`` to fulfilment --
as a statsd timer (``StatsReporter.request_queue``) and to the listeners
added with ``add_queue_listener`` (the web app's Prometheus histogram).

Threads: ``note``, ``seen``, ``end_pass``, ``finished`` run on the pool
worker's thread; ``declined`` on its I/O threads; write callbacks on
kazoo's thread.  One lock guards the book.

Failure story: writes are asynchronous and never raise into the worker;
a write that did not land (connection trouble) is made again on a later
pass; after a lost session (``lost``) every reason is written again, since
the ephemeral records went with the session.  A dead launcher's records
vanish with its session; a stopped worker deletes its own (``clear``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from nodepool.driver.ratelimit import RateLimiter
from nodepool.zk.models import NodeState, RequestState
from nodepool.zk.waits import RequestWait

__all__ = ["Reason", "WaitBook", "QueueEvent", "add_queue_listener",
           "remove_queue_listener", "at_quota", "offering", "throttled",
           "no_capacity", "queued", "starved", "declined", "declined_here",
           "building",
           "handler_reason", "PUBLISH_AFTER"]

# A request that waits less than this is never written: most requests of
# a burst are served within it, and their reasons would be churn.
PUBLISH_AFTER = 1.0
# Record writes a second at most, in bursts of as many (one pool worker).
WRITES_PER_S = 100.0
# A written record of the same kind is rewritten at most this often.
REFRESH = 5.0
# A cloud's capacity message can be long: the one-line text keeps this much.
CLOUD_TEXT = 120
MIN_READY = "NodePool:min-ready"


@dataclass(frozen=True)
class Reason:
    kind: str
    text: str
    details: dict = field(default_factory=dict)


def _labels(labels: Iterable[str]) -> str:
    return ",".join(sorted(set(labels)))


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _num(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- the reasons -------------------------------------------------------------
def at_quota(verdict) -> Reason:
    """Waiting for quota: which limit, what the request needs, what is free
    (a ``nodepool.launcher.quota.Verdict``; None: a node the cloud refused
    for quota is replaced after a pause)."""
    if verdict is None or verdict.limit is None:
        return Reason("quota", "at quota: the cloud refused a node for "
                      "quota; it is replaced after a pause")
    return Reason("quota", f"at quota: {verdict.describe()}",
                  {"limit": verdict.limit, "resource": verdict.resource,
                   "need": _num(verdict.need), "free": _num(verdict.free)})


def offering(record, labels: Iterable[str]) -> Reason:
    """The cloud had no capacity for the offering of ``labels``: skipped
    until ``record.until`` (an ``nodepool.zk.offering.Offering``)."""
    cloud = " ".join(str(record.reason).split())[:CLOUD_TEXT]
    return Reason("offering", f"offering {record.key} unavailable until "
                  f"{_utc(record.until)} for label(s) {_labels(labels)}: "
                  f"{cloud}",
                  {"offering": record.key, "until": record.until,
                   "labels": sorted(set(labels))})


def throttled(provider: str, limit: int) -> Reason:
    return Reason("throttled", f"throttled: provider {provider} has "
                  f"max-concurrency {limit} launches in progress or being "
                  "taken", {"max_concurrency": limit})


def no_capacity(labels: Iterable[str], static: bool) -> Reason:
    """The driver has no node to hand out now (static: every slot busy)."""
    if static:
        return Reason("static-slot", "waiting for a free static slot for "
                      f"label(s) {_labels(labels)}",
                      {"labels": sorted(set(labels))})
    return Reason("capacity", "the provider has no capacity for label(s) "
                  f"{_labels(labels)} now", {"labels": sorted(set(labels))})


def queued(labels: Iterable[str]) -> Reason:
    """Behind an earlier request of the same label waiting at quota
    (requests of one label keep their order)."""
    return Reason("queued", "queued behind an earlier request of label(s) "
                  f"{_labels(labels)} that waits at quota in this pool",
                  {"labels": sorted(set(labels))})


def starved(after: float) -> Reason:
    return Reason("queued", "the pool takes no new request until its oldest "
                  f"request waiting at quota (over {_num(float(after))} s) "
                  "is served", {"starve_after": _num(float(after))})


def declined(text: str, labels: list[str], served: set[str],
             images: dict[str, str]) -> Reason:
    """This pool declined the request, which still waits for the others.

    ``served``: every label some registered pool serves; ``images``: label
    -> image name of the request's labels whose image is not ready here.
    """
    missing = [label for label in labels if label not in served]
    if text.startswith("node type(s)") and missing:
        return Reason("no-pool", "no pool serves label(s) "
                      f"{_labels(missing)}", {"labels": sorted(set(missing))})
    if text == "images are not available" and images:
        names = ", ".join(f"{label} ({image})"
                          for label, image in sorted(images.items()))
        return Reason("image", f"image not ready in this pool for {names}",
                      {"labels": sorted(images), "images": sorted(
                          set(images.values()))})
    return Reason("declined", f"declined by this pool: {text}",
                  {"reason": text})


def declined_here(text: str, request, pool, registered: set[str],
                  components, image_available) -> Reason:
    """``declined`` for a request ``pool`` declined: the labels of the
    ``registered`` pool components, the images ``image_available`` (the
    worker's check of a label object) does not find."""
    served = {label for c in components if c.id in registered
              for label in c.supported_labels or []}
    images = {}
    if text == "images are not available":
        for name in request.node_types:
            label = pool.labels.get(name)
            if label is not None and not image_available(label):
                images[name] = label.diskimage or label.cloud_image
    return declined(text, list(request.node_types), served, images)


_BUILDING = frozenset({NodeState.INIT, NodeState.BUILDING})


def building(node_ids: Iterable[str]) -> Reason:
    """One shared ``Reason`` per set of node ids: every pass asks each
    handler again, and one that still waits for the same nodes costs a
    lookup, not a new record (its details are read, never changed)."""
    return _building(tuple(node_ids))


@functools.lru_cache(maxsize=4096)
def _building(node_ids: tuple[str, ...]) -> Reason:
    return Reason("building", "waiting for node(s) "
                  f"{','.join(node_ids)} being built",
                  {"nodes": list(node_ids)})


def handler_reason(handler, launches_nodes: bool) -> Reason | None:
    """Why an accepted request (its ``RequestHandler``) is not fulfilled."""
    if handler.done or handler.retry is not None:
        return None
    if handler.paused:
        if not launches_nodes:
            return no_capacity(handler.request.node_types, static=True)
        return at_quota(handler.verdict)
    ids = tuple(n.id for n in handler.nodes
                if n is not None and n.state in _BUILDING)
    return _building(ids) if ids else None


def behind(reason: Reason, request_id: str, quota: Reason) -> Reason:
    """``queued`` naming the request it waits behind and that one's limit."""
    return Reason("queued", f"queued behind request {request_id}, which "
                  f"waits {quota.text}", {**reason.details,
                                          "behind": request_id,
                                          **quota.details})


def _name_blockers(reasons: dict[str, Reason], handlers) -> None:
    """Each ``queued`` reason of this pass names the waiting request of
    its label (the first in processing order) and that one's limit."""
    if not any(r.kind == "queued" for r in reasons.values()):
        return      # the usual pass: nothing to name, no sort of handlers
    first: dict[str, str] = {}
    for handler in sorted(handlers, key=lambda h: h.request.sort_key()):
        rid = handler.request.id
        if reasons.get(rid) is not None and reasons[rid].kind == "quota":
            for label in handler.request.node_types:
                first.setdefault(label, rid)
    for rid, reason in list(reasons.items()):
        if reason.kind != "queued" or "labels" not in reason.details:
            continue
        for label in reason.details["labels"]:
            if label in first:
                reasons[rid] = behind(reason, first[label],
                                      reasons[first[label]])
                break


# -- queue time ----------------------------------------------------------------
@dataclass(frozen=True)
class QueueEvent:
    source: object          # the launcher whose pool fulfilled it
    provider: str
    pool: str
    labels: tuple[str, ...]  # distinct labels of the request
    seconds: float           # from created_time to fulfilment


_queue_listeners: list[Callable[[QueueEvent], None]] = []


def add_queue_listener(callback: Callable[[QueueEvent], None]) -> None:
    _queue_listeners.append(callback)


def remove_queue_listener(callback: Callable[[QueueEvent], None]) -> None:
    if callback in _queue_listeners:
        _queue_listeners.remove(callback)


# -- the book ------------------------------------------------------------------
@dataclass
class _Entry:
    reason: Reason
    since: float                # epoch: this kind first held
    first: float                # monotonic: the request first waited here
    written: Reason | None = None   # what ZooKeeper holds (None: nothing)
    writing: bool = False
    sent: bool = False          # a write was sent: a drop deletes
    written_at: float = float("-inf")   # monotonic: the last write's start


class WaitBook:
    """One pool worker's wait records (see the module docstring).  Usage::

        book = WaitBook(zk, worker.id, "aws", "main", hostname)
        book.note(request.id, waits.queued(["small"]))   # while routing
        book.end_pass(worker.handlers, launches_nodes=True)
    """

    publish_after = PUBLISH_AFTER
    refresh = REFRESH

    def __init__(self, zk, worker_id: str, provider: str, pool: str,
                 hostname: str, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 writes_per_s: float = WRITES_PER_S):
        self.zk = zk
        self.worker_id = worker_id
        self.provider = provider
        self.pool = pool
        self.hostname = hostname
        self.clock = clock
        self.monotonic = monotonic
        self.log = logging.getLogger(
            f"nodepool.PoolWorker.{provider}-{pool}.waits")
        self._lock = threading.RLock()
        self._held: dict[str, _Entry] = {}
        self._pass: dict[str, Reason] = {}
        self._visited: set[str] = set()
        self._declined: dict[str, Reason] = {}
        # request id -> the version (mzxid) it was last asked and found
        # REQUESTED at: not asked again while the cache holds that version
        self._asked: dict[str, int] = {}
        self._budget = RateLimiter(f"waits {provider}-{pool}", writes_per_s,
                                   burst=max(1.0, writes_per_s),
                                   clock=monotonic)
        self.writes = 0         # record writes started (tests measure them)
        self.deletes = 0
        self.asks = 0           # requests read from the store (the same)

    # -- what the worker saw -----------------------------------------------
    def note(self, request_id: str, reason: Reason) -> None:
        with self._lock:
            self._pass[request_id] = reason
            self._visited.add(request_id)

    def seen(self, request_id: str) -> None:
        """Routed this pass without a reason to wait here."""
        with self._lock:
            self._visited.add(request_id)

    def declined(self, request_id: str, reason: Reason) -> None:
        """Declined here and still ``requested`` (other pools remain)."""
        with self._lock:
            self._declined[request_id] = reason

    # -- the pass's end ----------------------------------------------------
    def end_pass(self, handlers, launches_nodes: bool) -> None:
        with self._lock:
            reasons, self._pass = self._pass, {}
            visited, self._visited = self._visited, set()
            for handler in handlers:
                visited.add(handler.request.id)
                reason = handler_reason(handler, launches_nodes)
                if reason is not None:
                    reasons[handler.request.id] = reason
            _name_blockers(reasons, handlers)
            for rid, reason in list(self._declined.items()):
                if not self._requested(rid):
                    del self._declined[rid]
                else:
                    reasons.setdefault(rid, reason)
            for rid in list(self._held):
                if rid in reasons:
                    continue
                if rid in visited or not self._requested(rid):
                    self._drop(rid)
                else:   # not routed this pass (a full queue): unchanged
                    reasons[rid] = self._held[rid].reason
            self._update(reasons)

    def finished(self, handler, source, stats) -> None:
        """``handler`` is done: its record goes; a fulfilled request's
        queue time is reported."""
        request = handler.request
        with self._lock:
            self._drop(request.id)
        if request.state != RequestState.FULFILLED \
                or request.requestor == MIN_READY \
                or request.created_time is None:
            return
        seconds = max(0.0, self.clock() - request.created_time)
        labels = tuple(sorted(set(request.node_types)))
        for label in labels:
            stats.request_queue(label, seconds)
        event = QueueEvent(source, self.provider, self.pool, labels, seconds)
        for callback in list(_queue_listeners):
            try:
                callback(event)
            except Exception:
                self.log.exception("Queue listener failed")

    def lost(self) -> None:
        """The session is gone, and every record with it."""
        with self._lock:
            for entry in self._held.values():
                entry.written = None
                entry.writing = False

    def clear(self) -> None:
        """The worker stops: delete every record it wrote."""
        with self._lock:
            for rid in list(self._held):
                self._drop(rid)
            self._declined.clear()
            self._asked.clear()

    # -- under the lock ------------------------------------------------------
    def _requested(self, request_id: str) -> bool:
        """Whether the request still waits (``requested``).  Read only
        when the cache holds another version than the one last found
        waiting -- a change of it was notified since, or it was never
        asked: an unchanged request costs no read, and with lazy caches a
        changed one costs one ZooKeeper read, not one per pass."""
        version = self.zk.request_version(request_id)
        if version is not None and self._asked.get(request_id) == version:
            return True
        self.asks += 1
        request = self.zk.get_request(request_id, cached=True)
        if request is None or request.state != RequestState.REQUESTED:
            self._asked.pop(request_id, None)
            return False
        if request.stat is not None:
            self._asked[request_id] = request.stat.mzxid
        return True

    def _update(self, reasons: dict[str, Reason]) -> None:
        now, mono = self.clock(), self.monotonic()
        news: list[tuple[str, _Entry]] = []
        refreshes: list[tuple[str, _Entry]] = []
        for rid, reason in reasons.items():
            entry = self._held.get(rid)
            if entry is None:
                entry = self._held[rid] = _Entry(reason, now, mono)
            elif entry.reason.kind != reason.kind:
                entry.reason, entry.since = reason, now
            else:
                entry.reason = reason
            if entry.reason == entry.written or entry.writing:
                continue
            if entry.written is None or \
                    entry.written.kind != entry.reason.kind:
                if mono - entry.first >= self.publish_after:
                    news.append((rid, entry))
            elif mono - entry.written_at >= self.refresh:
                refreshes.append((rid, entry))
        for rid, entry in news + refreshes:
            if not self._budget.try_acquire():
                return      # the rest stays due: a later pass writes it
            self._write(rid, entry, now, mono)

    def _write(self, rid: str, entry: _Entry, now: float,
               mono: float) -> None:
        reason = entry.reason
        record = RequestWait(
            request=rid, worker=self.worker_id, kind=reason.kind,
            text=reason.text, since=entry.since, updated=now,
            provider=self.provider, pool=self.pool, hostname=self.hostname,
            details=dict(reason.details))

        def done(landed: bool) -> None:
            with self._lock:
                entry.writing = False
                if landed:
                    entry.written = reason
                else:
                    entry.written = None   # created again on a later pass
        entry.writing = entry.sent = True
        entry.written_at = mono
        self.writes += 1
        try:
            self.zk.put_wait_async(record, entry.written is not None, done)
        except Exception as exc:
            entry.writing = False
            self.log.debug("Could not write wait record of request %s: %s",
                           rid, exc)

    def _drop(self, rid: str) -> None:
        self._asked.pop(rid, None)
        entry = self._held.pop(rid, None)
        if entry is None or not entry.sent:
            return
        self.deletes += 1
        try:
            # Sent after any write in flight: the session keeps the order.
            self.zk.delete_wait_async(rid, self.worker_id, lambda ok: None)
        except Exception as exc:
            self.log.debug("Could not delete wait record of request %s: %s",
                           rid, exc)
