"""Submitting, reading, locking and removing node requests (zookeeper.md
§3, §4, §6.1, §7).

Request locks live in a sibling tree, ``/nodepool/requests-lock/<id>``, which
outlives the request; cleanup removes the empty directories of vanished
requests on its next pass (:meth:`delete_empty_request_lock_dirs`) and any
other directory of a vanished request after 8 hours
(:meth:`iter_request_lock_dirs`).

Failure story: as for nodes (``node_store.py``): ``lock_request`` raises
``LockError`` or ``LockedObjectGone`` and re-reads the request after
acquiring, so ``relative_priority``, ``state`` and ``declined_by`` are the
current values.  A request that cannot be read is quarantined (``store.py``)
and never locked by the routing path; :meth:`decline_unreadable_request`
fails one on behalf of a pool it is addressed to, writing only ``state``,
``state_time`` and ``declined_by`` and keeping every other byte of meaning
(any lock, conflict or change since the read: nothing is written, the pool
tries again on a later pass).

Threads: every method may be called from any thread (pool-worker I/O
threads, the cleanup worker, the CLI); state shared between calls lives in
ZooKeeper and in the store's caches, which guard themselves.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterator

from kazoo.exceptions import (BadVersionError, KazooException,
                              NodeExistsError, NoNodeError, NotEmptyError)

from . import locking
from .errors import (BadZnode, LockedObjectGone, LockError, NotFound,
                     ZooKeeperError)
from .paths import (REQUEST_LOCKS, REQUESTS, request_lock_path,
                    request_path)
from .record import decode_payload
from .request import (DEFAULT_PRIORITY, REQUEST_SCHEMA, NodeRequest,
                      RequestState)
from .store import StoreBase

__all__ = ["RequestStore"]


class RequestStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for requests."""

    def submit_request(self, request: NodeRequest,
                       priority: str = DEFAULT_PRIORITY,
                       ephemeral: bool = False) -> str:
        """Create ``/nodepool/requests/<priority>-<seq10>``; returns the id."""
        if request.state is None:
            request.set_state(RequestState.REQUESTED)
        elif request.state_time is None:
            request.set_state(request.state)
        if request.created_time is None:
            request.created_time = request.state_time
        return self._create_record(f"{REQUESTS}/{priority}-", request,
                                   ephemeral=ephemeral)

    def get_request(self, request_id: str,
                    cached: bool = False) -> NodeRequest | None:
        return self._read_record(NodeRequest, request_id,
                                 request_path(request_id), cached)

    def request_exists(self, request_id: str, cached: bool = True) -> bool:
        """Whether the request znode exists (no decoding; cached: as far as
        the cache's notifications tell, without reading it)."""
        path = request_path(request_id)
        if self._use_cache(path, cached):
            return self.caches.exists(path)
        return self.kazoo.exists(path) is not None

    def request_may_exist(self, request_id: str) -> bool:
        """False only when the cache knows the request znode is gone (its
        notifications tell, without a read); True while it exists or when
        no cache can tell -- never a round trip."""
        path = request_path(request_id)
        if self._use_cache(path, True):
            return self.caches.exists(path)
        return True

    def request_unchanged(self, request_id: str) -> bool:
        """Whether the cache knows the request unchanged since it was
        created (no read; False when it cannot tell)."""
        path = request_path(request_id)
        return self._use_cache(path, True) and self.caches.unchanged(path)

    def request_version(self, request_id: str) -> int | None:
        """The ``mzxid`` of the request as the cache holds it while no
        change of it is unread (no read); None when the cache cannot tell
        (absent, stale, or no cache)."""
        path = request_path(request_id)
        if not self._use_cache(path, True):
            return None
        return self.caches.version(path)

    def iter_requests(self, cached: bool = True, want=None,
                      shared: bool = False,
                      rejects: list | None = None,
                      ids=None, current: bool = True) -> list[NodeRequest]:
        """Every usable request in processing order (zookeeper.md §3);
        ``want``: only those this read-only predicate accepts; ``shared``:
        read-only records straight from the cache (``clone()`` to modify);
        ``rejects``: gets the ``Quarantined`` entry of every request znode
        skipped because it cannot be read; ``ids``: only requests whose id
        this predicate accepts (the others are not even read); not
        ``current``: a version read before will do (for callers that look
        only at what a request never changes, e.g. ``node_types``)."""
        requests = list(self._iter_records(NodeRequest, REQUESTS, cached,
                                           want, shared, rejects, ids,
                                           current))
        requests.sort(key=NodeRequest.sort_key)
        return requests

    def store_request(self, request: NodeRequest) -> None:
        """Conditional update; a concurrent requester change is merged."""
        if request.id is None:
            raise ValueError("use submit_request() for new requests")
        self._write_record(request_path(request.id), request)

    def delete_request(self, request: NodeRequest) -> None:
        """Remove the request znode (its lock directory stays for cleanup)."""
        self._delete_tree(request_path(request.id))

    # -- locks ------------------------------------------------------------
    def lock_request(self, request: NodeRequest, blocking: bool = True,
                     timeout: float | None = None,
                     identifier: str | None = None) -> None:
        """Lock ``/nodepool/requests-lock/<id>`` and re-read the request."""
        lock = locking.make_lock(self.kazoo, request_lock_path(request.id),
                                 create_parent=True, identifier=identifier)
        locking.acquire(lock, f"request {request.id}", blocking, timeout)
        request.lock = lock
        try:
            self._refresh_record(request_path(request.id), request)
        except (NotFound, BadZnode) as exc:
            self.unlock_request(request)
            raise LockedObjectGone(f"request {request.id}: {exc}") from exc
        except BaseException:
            # Locked but not re-read (connection trouble): never keep a
            # lock on what we could not read.
            self._unlock_quietly_request(request)
            raise

    def lock_and_store_request(self, request: NodeRequest,
                               identifier: str | None = None) -> bool:
        """Lock the request and write ``request`` in one transaction.

        Succeeds (True) only when nobody ever locked the request (its lock
        directory does not exist) and the znode is still the version
        ``request`` was read at, so no re-read is needed; otherwise nothing
        changed and it returns False: use :meth:`lock_request` and re-check.
        """
        lock = locking.make_lock(self.kazoo, request_lock_path(request.id),
                                 create_parent=True, identifier=identifier)
        what = f"lock request {request.id}"
        path = request_path(request.id)
        error = self._lock_and_write(lock, path, request, what)
        if isinstance(error, NoNodeError):
            # The lock root is missing (no request was ever locked here)
            # or the request is gone: make the root and try once more.
            self.kazoo.ensure_path(REQUEST_LOCKS)
            error = self._lock_and_write(lock, path, request, what)
        if error is None:
            return True
        if isinstance(error, (NodeExistsError, BadVersionError,
                              NoNodeError)):
            return False
        raise LockError(f"Could not lock request {request.id}: {error!r}")

    def finish_request(self, request: NodeRequest, nodes=()) -> bool:
        """Write ``request`` and release its lock and the locks of
        ``nodes`` in one transaction.  False (nothing changed) when the
        request changed meanwhile or a lock is gone: write and unlock one
        by one then (``store_request`` merges concurrent changes)."""
        txn = self.kazoo.transaction()
        txn.set_data(request_path(request.id), request.to_json(),
                     version=request.stat.version)
        held = [o for o in (*nodes, request)
                if o.lock is not None and o.lock.is_acquired]
        for obj in held:
            locking.add_release(txn, obj.lock)
        results, error = self._commit(txn, f"write request {request.id}")
        if error is not None:
            return False
        request.stat = results[0]
        request.mark_clean()
        for obj in held:
            locking.mark_released(obj.lock)
            obj.lock = None
        return True

    def _unlock_quietly_request(self, request) -> None:
        try:
            self.unlock_request(request)
        except Exception:
            self.log.warning("Could not release the lock of request %s; it "
                             "goes with the session", request.id)
            request.lock = None

    def unlock_request(self, request: NodeRequest) -> None:
        locking.release(request.lock)
        request.lock = None

    # -- unreadable requests ----------------------------------------------
    def decline_unreadable_request(self, request_id: str, worker_id: str,
                                   addressed: Callable[[dict], bool],
                                   now: float | None = None) -> str | None:
        """Fail a request that cannot be read, for pool ``worker_id``.

        Takes the request lock without waiting and re-reads the znode.
        Writes only when the payload is a JSON object that still does not
        fit the request schema, is still ``requested``, has not been
        declined by ``worker_id`` and ``addressed(payload)`` holds: then
        ``state`` becomes ``failed``, ``state_time`` is stamped and
        ``worker_id`` is appended to ``declined_by`` (when that is absent,
        null or an array; anything else is left as it is), conditional on
        the version read.  Every other key is written back as read.
        Returns the reason the request could not be read when it was
        failed, else None (nothing written)."""
        path = request_path(request_id)
        lock = locking.make_lock(self.kazoo, request_lock_path(request_id),
                                 create_parent=True)
        try:
            locking.acquire(lock, f"request {request_id}", False, None)
        except LockError:
            return None
        try:
            return self._fail_unreadable(path, worker_id, addressed, now)
        finally:
            try:
                locking.release(lock)
            except Exception:
                self.log.warning("Could not release the lock of request %s;"
                                 " it goes with the session", request_id)

    def _fail_unreadable(self, path: str, worker_id: str,
                         addressed: Callable[[dict], bool],
                         now: float | None) -> str | None:
        try:
            data, stat = self.kazoo.get(path)
        except NoNodeError:
            return None
        try:
            payload = decode_payload(data)
        except BadZnode:
            return None     # not an object: nothing we could keep
        if payload is None:
            return None
        reason = REQUEST_SCHEMA.check(payload)
        if reason is None or payload.get("state") != RequestState.REQUESTED:
            return None     # readable now (routing serves it), or not ours
        declined = payload.get("declined_by")
        if isinstance(declined, list) and worker_id in declined:
            return None
        if not addressed(payload):
            return None
        if declined is None or isinstance(declined, list):
            payload["declined_by"] = list(declined or []) + [worker_id]
        payload["state"] = RequestState.FAILED
        payload["state_time"] = time.time() if now is None else now
        body = json.dumps(payload).encode("utf-8")
        try:
            self._set_async(path, body, stat.version).get()
        except (BadVersionError, NoNodeError):
            return None
        except KazooException as exc:
            raise ZooKeeperError(f"could not write {path}: {exc!r}") \
                from exc
        return reason

    # -- cleanup helpers --------------------------------------------------
    def iter_request_lock_dirs(self) -> Iterator[tuple[str, float]]:
        """(request id, mtime in epoch seconds) of every lock directory."""
        for request_id in self.request_lock_dir_ids():
            mtime = self.request_lock_dir_mtime(request_id)
            if mtime is not None:
                yield request_id, mtime

    def request_lock_dir_ids(self) -> list[str]:
        """The request ids that have a lock directory (one listing)."""
        return self._children(REQUEST_LOCKS, cached=False)

    def request_lock_dir_mtime(self, request_id: str) -> float | None:
        """The lock directory's mtime in epoch seconds (None: gone)."""
        stat = self.kazoo.exists(request_lock_path(request_id))
        return None if stat is None else stat.mtime / 1000.0

    def delete_request_lock_dir(self, request_id: str) -> None:
        self._delete_tree(request_lock_path(request_id))

    def delete_empty_request_lock_dirs(self, request_ids) -> set[str]:
        """Remove the lock directories of ``request_ids`` that hold no
        lock contender, all requests in flight at once; returns the ids
        whose directory went.  A directory with a child stays: ZooKeeper
        never deletes a znode that has children, so a held or contended
        lock is never touched, however the calls interleave.  One gone
        meanwhile is skipped; other trouble raises ``ZooKeeperError``
        once every answer is in."""
        pending = [(request_id, self.kazoo.delete_async(
            request_lock_path(request_id))) for request_id in request_ids]
        removed: set[str] = set()
        trouble: Exception | None = None
        for request_id, result in pending:
            try:
                result.get()
            except (NoNodeError, NotEmptyError):
                continue
            except KazooException as exc:
                trouble = trouble or exc
                continue
            removed.add(request_id)
        if trouble is not None:
            raise ZooKeeperError(f"could not remove request lock "
                                 f"directories: {trouble!r}") from trouble
        return removed
