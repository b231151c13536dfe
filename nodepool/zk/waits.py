"""Why a request waits: ``/nodepool/request-waits/<request id>:<worker>``.

A *wait record* says why one pool worker has not served a request yet:
``kind`` (machine-readable: ``quota``, ``offering``, ``throttled``,
``capacity``, ``image``, ``no-pool``, ``static-slot``, ``building``, ``queued``,
``declined``), ``text`` (one line for people, with the specifics: which
limit and how much is free, which offering and until when...), ``since``
(epoch seconds since when this kind of reason has held), ``updated`` (its
last write), the ``provider``, ``pool``, ``hostname`` and pool-worker id
(``worker``) of the writer, and ``details`` (the specifics as JSON).

Readers also show, for a ``requested`` request with a label no
registered pool offers, a ``no-pool`` reason nobody wrote (``unserved``):
with every launcher of that label down there is no one to write it.

Why a tree of its own: request znodes belong to the requester.  Zuul
rewrites a request from the keys it knows (a key we added would be dropped
on its next write, and upstream would not know it) and deletes the request
znode when it is done (a child would make that delete fail).  So the
records live here, one per (request, pool worker): two pools, or two
launchers, each say their own reason without a shared writer.  The znode
name is ``<request id>:<the worker id's uuid part>``.  The records are
ephemeral: a launcher that dies takes its reasons with it.  This path is
ours; upstream Nodepool and Zuul never read it.

Failure story: writes are asynchronous (``put_wait_async`` /
``delete_wait_async``) and go out in the order they were asked: the pool
worker's loop never waits on them, and the callback it passes hears of a
write that did not land (the caller writes it again later).  A create that finds the znode present (a reply
lost on a reconnect) becomes a set.  A record that cannot be parsed is
skipped with one warning per znode version (it is only shown, never acted
on); other ZooKeeper errors of reads reach the caller as
``ZooKeeperError``.

Threads: any thread may read or ask for a write.  A write is sent on the
asking thread -- or, for those asked before the tree's root was made, on
kazoo's completion thread, in the order asked, before any later one --
and its callback runs on kazoo's completion thread, so it must only record
the outcome.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from .errors import ZooKeeperError
from .paths import REQUEST_WAITS, request_wait_path
from .store import StoreBase

__all__ = ["RequestWait", "WaitStore", "KINDS", "unserved"]

#: every kind a launcher writes (readers show unknown kinds as they are)
KINDS = ("quota", "offering", "throttled", "capacity", "image", "no-pool",
         "static-slot", "building", "queued", "declined")


@dataclass(eq=False, kw_only=True)
class RequestWait:
    request: str
    worker: str
    kind: str
    text: str
    since: float = 0.0
    updated: float = 0.0
    provider: str = ""
    pool: str = ""
    hostname: str = ""
    details: dict = field(default_factory=dict)

    FIELDS = ("request", "worker", "kind", "text", "since", "updated",
              "provider", "pool", "hostname", "details")

    @property
    def name(self) -> str:
        """The znode name (see the module docstring)."""
        return wait_name(self.request, self.worker)

    def to_json(self) -> bytes:
        return json.dumps({f: getattr(self, f) for f in self.FIELDS},
                          sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "RequestWait":
        """Parse one record; ValueError names what does not fit."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for name in ("request", "worker", "kind", "text"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"{name!r} is not a string")
        for name in ("since", "updated"):
            value = data.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name!r} is not a number")
        if not isinstance(data.get("details", {}), dict):
            raise ValueError("'details' is not an object")
        return cls(**{f: data[f] for f in cls.FIELDS if f in data})


def wait_name(request_id: str, worker_id: str) -> str:
    # The uuid at the end of a pool-worker id keeps the name short and
    # unique per worker start (zookeeper.md §8.1).
    return f"{request_id}:{worker_id.rsplit('-', 1)[-1]}"


def unserved(requests, components) -> dict[str, list[RequestWait]]:
    """Reasons no launcher can write: a ``requested`` request with a
    label that no registered pool component offers (every launcher
    serving it is down, or none ever did) -- ``no-pool``, since the
    request's creation.  Readers add these to the records they read."""
    offered = {label for c in components
               for label in c.supported_labels or []}
    out = {}
    for request in requests:
        missing = sorted(set(request.node_types) - offered)
        if request.state == "requested" and missing:
            out[request.id] = [RequestWait(
                request=request.id, worker="", kind="no-pool",
                text="no registered pool offers label(s) "
                f"{','.join(missing)}",
                since=request.created_time or request.state_time or 0.0,
                details={"labels": missing})]
    return out


_ROOT_LOCK = threading.Lock()


def _send(send: Callable[[], None], done: Callable[[bool], None]) -> None:
    try:
        send()
    except Exception:
        done(False)     # the connection closed: written again later


class WaitStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for wait records."""

    # The tree's root is made once (asynchronously), before the first
    # creates: creates sent together while it is missing would each fail
    # and make it again (1000 took 17 s instead of 3).  None, "making"
    # (writes asked meanwhile wait in the queue) or "made".
    _wait_root: str | None = None
    _wait_root_queue: list = []

    def iter_waits(self, cached: bool = True) -> Iterator[RequestWait]:
        for path, data, stat in self._wait_payloads(cached):
            if not data:
                continue
            try:
                yield RequestWait.from_json(data)
            except (ValueError, UnicodeDecodeError) as exc:
                self._report_once(path, stat, f"bad wait record: {exc}")

    def requests_with_waits(self, but: str | None = None) -> set[str]:
        """Ids of the requests some pool worker other than ``but`` (a
        worker id) keeps a wait record for: from the cached names, no
        read (empty when the tree is not cached)."""
        if not self._use_cache(REQUEST_WAITS, True):
            return set()
        mine = None if but is None else ":" + wait_name("", but)[1:]
        return {name.rpartition(":")[0]
                for name in self._children(REQUEST_WAITS, True)
                if mine is None or not name.endswith(mine)}

    def _wait_payloads(self, cached: bool):
        """(path, data, stat) of every record: from the cache, or read all
        at once (a request per record, sent together)."""
        if self._use_cache(REQUEST_WAITS, cached):
            for name, entry in self.caches.child_data(REQUEST_WAITS):
                if entry is not None:
                    yield f"{REQUEST_WAITS}/{name}", entry.data, entry.stat
            return
        paths = [f"{REQUEST_WAITS}/{name}"
                 for name in self._children(REQUEST_WAITS, False)]
        try:
            replies = [(path, self.kazoo.get_async(path)) for path in paths]
            for path, reply in replies:
                try:
                    data, stat = reply.get()
                except NoNodeError:
                    continue    # gone since it was listed
                yield path, data, stat
        except KazooException as exc:
            raise ZooKeeperError(f"could not read {REQUEST_WAITS}: "
                                 f"{exc!r}") from exc

    def waits_by_request(self, cached: bool = True, requests=None
                         ) -> dict[str, list[RequestWait]]:
        """request id -> its wait records, oldest ``since`` first; given
        the ``requests`` read, with the ``unserved`` reasons of those that
        have no record (the pool components are read too)."""
        out: dict[str, list[RequestWait]] = {}
        for wait in self.iter_waits(cached):
            out.setdefault(wait.request, []).append(wait)
        if requests is not None:
            components = self.iter_pool_components(cached=cached)
            for rid, waits in unserved(requests, components).items():
                out.setdefault(rid, waits)
        for waits in out.values():
            waits.sort(key=lambda w: (w.since, w.provider, w.pool))
        return out

    def put_wait_async(self, wait: RequestWait, exists: bool,
                       done: Callable[[bool], None]) -> None:
        """Create (ephemeral) or set (``exists``) the record without
        waiting; ``done(landed)`` is called with the outcome (a set of a
        record that is gone does not land: the caller creates it anew)."""
        path = request_wait_path(wait.name)
        data = wait.to_json()

        def created(result) -> None:
            try:
                result.get()
            except NodeExistsError:
                self._then(self.kazoo.set_async(path, data), done)
                return
            except Exception:
                done(False)
                return
            done(True)

        def send() -> None:
            if exists:
                self._then(self.kazoo.set_async(path, data), done)
            else:
                self.kazoo.create_async(path, data, ephemeral=True,
                                        makepath=True).rawlink(created)
        self._in_order(send, done)

    def delete_wait_async(self, request_id: str, worker_id: str,
                          done: Callable[[bool], None]) -> None:
        path = request_wait_path(wait_name(request_id, worker_id))
        self._in_order(lambda: self._then(
            self.kazoo.delete_async(path), done, missing=lambda: done(True)),
            done)

    def _in_order(self, send: Callable[[], None],
                  done: Callable[[bool], None]) -> None:
        """``send()`` now, or -- before the root exists -- once it was made
        (or making it failed: a create's own ``makepath`` then tries
        again), all of those in the order asked (a delete never overtakes
        its create).  ``done(False)`` when it cannot be sent."""
        with _ROOT_LOCK:
            if self._wait_root != "made":
                start = self._wait_root is None
                if start:
                    self._wait_root, self._wait_root_queue = "making", []
                self._wait_root_queue.append((send, done))
                send = None
        if send is not None:
            _send(send, done)
            return
        if start:
            try:
                self.kazoo.ensure_path_async(REQUEST_WAITS).rawlink(
                    self._root_made)
            except KazooException as exc:
                self._root_made(None)
                raise ZooKeeperError(f"could not write {REQUEST_WAITS}: "
                                     f"{exc!r}") from exc

    def _root_made(self, result) -> None:
        with _ROOT_LOCK:
            ok = result is not None and result.exception is None
            self._wait_root = "made" if ok else None
            queue, self._wait_root_queue = self._wait_root_queue, []
            for send, done in queue:     # under the lock: before newer ones
                _send(send, done)

    @staticmethod
    def _then(result: Any, done: Callable[[bool], None],
              missing: Callable[[], None] | None = None) -> None:
        def settle(result) -> None:
            try:
                result.get()
            except NoNodeError:
                if missing is not None:
                    missing()
                    return
                done(False)
                return
            except Exception:
                done(False)
                return
            done(True)
        result.rawlink(settle)
