"""Shared read/write plumbing for the record stores.

Failure story:

* Unusable payloads are read as "no object"; loops continue.  An empty
  znode is logged once per version at INFO.  A payload that is not a JSON
  object or does not fit its record's schema (``schema.py``) is
  *quarantined* (``quarantine.py``): one warning per znode version naming
  the path and the field, counted, remembered while it lasts, and never
  returned by a read -- so it is never handed out and never reaches the
  launcher's sorting or sums.  Iterators take a ``rejects`` list to learn
  which znodes they skipped (the CLI prints them).
* Writes of existing records are conditional on the version read.  On
  ``BadVersion`` the znode is re-read, the caller's own changes are re-applied
  (``ZnodeRecord.merge_onto``) and the write retried, so a concurrent change
  by Zuul (e.g. ``relative_priority``) is not lost.  A znode removed under us
  raises ``NotFound``.
* Connection errors (``ConnectionLoss``, ``SessionExpired``) propagate as
  kazoo exceptions wrapped in ``ZooKeeperError``; callers retry on a later
  pass.

Threads: the stores are mixins of one ``ZooKeeper`` facade, shared by
every thread of its process (in the launcher: pool workers and their I/O
threads, provider loops, the periodic workers, the usage and wait books,
the stats election, the web app's workers).  Reads and writes run on the
caller's thread and wait there for ZooKeeper, so they must never be
called from kazoo's own threads; ``_write_record_async`` only sends, and
its ``PendingWrite.result`` is taken by the caller once ``done()``.  The
cache is told the outcome of a single set on kazoo's completion thread
(``rawlink``), of a transaction on the committing thread.  Shared state:
``_reported`` under ``_reported_lock``; the quarantine under its own
lock; the decoded-record memo (``_memo``) without a lock -- each access is
one dict operation (atomic under the GIL), and a lost race costs at most a
second decode.  A record read with ``shared=True`` is the memo's own
object, seen by every thread: it must not be changed (``clone()`` it).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterator, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, KazooException, NoNodeError,
                              NotEmptyError, RolledBackError,
                              RuntimeInconsistency)
from kazoo.protocol.serialization import SetData

from . import locking
from .cache import TreeCaches
from .errors import BadZnode, NotFound, ZooKeeperError
from .quarantine import Quarantine, Quarantined, kind_of
from .record import ZnodeRecord, decode_payload

__all__ = ["StoreBase"]

R = TypeVar("R", bound=ZnodeRecord)

# Conflicting writers are rare; this many rounds means something is wrong.
MAX_WRITE_ATTEMPTS = 25
# Decoded records remembered for cached reads (cleared when exceeded).
_MEMO_LIMIT = 100000
# The memo is pruned of znodes the caches no longer hold when it reaches
# twice its size after the last pruning (and at least this many entries).
_MEMO_PRUNE_MIN = 1024
# Records whose problems we already logged, to avoid one line per loop pass.
_REPORT_MEMORY = 10000


class StoreBase:
    """Plumbing used by the node/request/component/image stores."""

    kazoo: KazooClient
    caches: TreeCaches
    log: logging.Logger

    def _init_store(self) -> None:
        self._reported: set[tuple[str, int]] = set()
        self._reported_lock = threading.Lock()
        self.quarantine = Quarantine(self.log)
        # path -> (mzxid, class, record or None, reason) of cached reads: a
        # loop that iterates a cache every pass decodes each znode version
        # once, then clones (a quarantined version is not decoded again).
        # Entries of deleted znodes are pruned (``_remember``): a deleted
        # znode is never read again, so its entry would stay.
        self._memo: dict[str, tuple[int, type, ZnodeRecord | None,
                                    str | None]] = {}
        self._memo_prune_at = _MEMO_PRUNE_MIN

    # -- reads ------------------------------------------------------------
    def _use_cache(self, path: str, cached: bool) -> bool:
        return cached and self.caches.covers(path)

    def _read_raw(self, path: str, cached: bool) -> tuple[bytes, Any] | None:
        if self._use_cache(path, cached):
            entry = self.caches.get(path)
            return None if entry is None else (entry.data, entry.stat)
        try:
            return self.kazoo.get(path)
        except NoNodeError:
            return None

    def _children(self, path: str, cached: bool) -> list[str]:
        if self._use_cache(path, cached):
            return sorted(self.caches.children(path))
        try:
            return sorted(self.kazoo.get_children(path))
        except NoNodeError:
            return []

    def _report_once(self, path: str, stat: Any, message: str,
                     level: int = logging.WARNING) -> None:
        """Log ``message`` once per znode version; at WARNING (a payload we
        cannot use) the version is quarantined and counted."""
        if level >= logging.WARNING:
            self.quarantine.report(path, stat, message)
            return
        key = (path, getattr(stat, "mzxid", 0))
        with self._reported_lock:
            if key in self._reported:
                return
            if len(self._reported) > _REPORT_MEMORY:
                self._reported.clear()
            self._reported.add(key)
        self.log.log(level, "Skipping znode %s: %s", path, message)

    def _decode(self, path: str, data: bytes | None, stat: Any
                ) -> dict | None:
        try:
            payload = decode_payload(data)
        except BadZnode as exc:
            self._report_once(path, stat, str(exc))
            return None
        if payload is None:
            self._report_once(path, stat, "empty znode (no object)",
                              logging.INFO)
        return payload

    def _build(self, cls: type[R], record_id: str, path: str,
               data: bytes | None, stat: Any) -> tuple[R | None, str | None]:
        """(record, None); (None, reason) for a quarantined znode; (None,
        None) for an empty one."""
        try:
            payload = decode_payload(data)
            if payload is None:
                self._report_once(path, stat, "empty znode (no object)",
                                  logging.INFO)
                return None, None
            record = cls._from_owned(record_id, payload, data)
        except BadZnode as exc:
            self._report_once(path, stat, str(exc))
            return None, str(exc)
        self.quarantine.release(path)
        record.stat = stat
        return record, None

    def _read_record(self, cls: type[R], record_id: str, path: str,
                     cached: bool, want=None, shared: bool = False,
                     rejects: list | None = None) -> R | None:
        """The record at ``path``; with ``want`` (a predicate over a
        read-only record) only records it accepts are returned, and the
        others are not even copied.  ``shared`` (cached reads only) returns
        the cache's own decoded record: the caller must not modify it
        (``clone()`` it first), which saves a copy per record for loops
        that only look.  A quarantined znode reads as None and, with
        ``rejects``, adds its :class:`Quarantined` entry there."""
        raw = self._read_raw(path, cached)
        if raw is None:
            self._memo.pop(path, None)
            self.quarantine.release(path)
            return None
        if not (cached and self._use_cache(path, cached)):
            record, reason = self._build(cls, record_id, path, *raw)
            if reason is not None and rejects is not None:
                rejects.append(self._rejected(path, raw[1], reason))
            return record if record is None or want is None or want(record) \
                else None
        return self._from_cache(cls, record_id, path, raw[0], raw[1], want,
                                shared, rejects)

    def _from_cache(self, cls: type[R], record_id: str, path: str,
                    data: bytes | None, stat: Any, want, shared: bool,
                    rejects: list | None = None) -> R | None:
        hit = self._memo.get(path)
        if hit is None or hit[0] != stat.mzxid or hit[1] is not cls:
            record, reason = self._build(cls, record_id, path, data, stat)
            if record is None and reason is None:
                return None     # empty: not remembered (it is filled soon)
            hit = (stat.mzxid, cls, record, reason)
            self._remember(path, hit)
        record = hit[2]
        if record is None:
            if rejects is not None:
                rejects.append(self._rejected(path, stat, hit[3]))
            return None
        if want is not None and not want(record):
            return None
        if shared:
            return record
        record = record.clone()
        record.stat = stat
        return record

    def _remember(self, path: str, hit: tuple) -> None:
        """Memoise ``hit`` for ``path``; every time the memo has doubled
        since the last pruning, drop the paths the caches no longer hold,
        so the memo stays within twice the cached records."""
        memo = self._memo
        if len(memo) >= self._memo_prune_at:
            for known in list(memo):
                if not self._still_cached(known):
                    memo.pop(known, None)
            if len(memo) > _MEMO_LIMIT:
                memo.clear()
            self._memo_prune_at = max(_MEMO_PRUNE_MIN, 2 * len(memo))
        memo[path] = hit

    def _still_cached(self, path: str) -> bool:
        try:
            return self.caches.exists(path)
        except ValueError:      # no longer covered by a cache
            return False

    @staticmethod
    def _rejected(path: str, stat: Any, reason: str) -> Quarantined:
        return Quarantined(kind_of(path), path, getattr(stat, "mzxid", 0),
                           reason)

    def quarantined(self, kind: str | None = None) -> list[Quarantined]:
        """Znodes quarantined now (of ``kind``: ``node``, ``request``,
        ...), dropping entries whose znode is gone or has changed since
        (as far as the caches tell; uncached paths are kept)."""
        def current(entry: Quarantined) -> bool:
            if not self._use_cache(entry.path, True):
                return True
            cached = self.caches.get(entry.path)
            return cached is not None and cached.stat.mzxid == entry.mzxid
        self.quarantine.prune(current)
        return self.quarantine.current(kind)

    def quarantined_payload(self, entry: Quarantined) -> dict | None:
        """The cached payload of a quarantined znode when it is a JSON
        object (None: gone, changed, or not an object)."""
        if not self._use_cache(entry.path, True):
            return None
        cached = self.caches.get(entry.path)
        if cached is None or cached.stat.mzxid != entry.mzxid:
            return None
        try:
            return decode_payload(cached.data)
        except BadZnode:
            return None

    def _iter_records(self, cls: type[R], directory: str, cached: bool,
                      want=None, shared: bool = False,
                      rejects: list | None = None,
                      names=None, current: bool = True) -> Iterator[R]:
        """Every usable record under ``directory`` (``want``/``shared``/
        ``rejects`` as for ``_read_record``), in znode-name order;
        ``names``: only those whose znode name it accepts (the others are
        not read at all, even by a lazy cache); not ``current`` (cached
        reads): any version the cache has read before will do -- for
        callers that look only at what never changes after creation."""
        if not self._use_cache(directory, cached):
            for name in self._children(directory, cached=False):
                if names is not None and not names(name):
                    continue
                record = self._read_record(cls, name, f"{directory}/{name}",
                                           False, want, rejects=rejects)
                if record is not None:
                    yield record
            return
        for name, entry in self.caches.child_data(directory, names,
                                                  current):
            if entry is None:
                continue      # listed, data not fetched yet
            record = self._from_cache(cls, name, f"{directory}/{name}",
                                      entry.data, entry.stat, want, shared,
                                      rejects)
            if record is not None:
                yield record

    # -- writes -----------------------------------------------------------
    def _create_record(self, prefix: str, record: ZnodeRecord,
                       ephemeral: bool = False) -> str:
        """Create ``prefix<seq10>``; sets ``record.id``/``stat``."""
        try:
            path, stat = self.kazoo.create(
                prefix, record.to_json(), ephemeral=ephemeral, sequence=True,
                makepath=True, include_data=True)
        except KazooException as exc:
            raise ZooKeeperError(f"could not create {prefix}: {exc!r}") \
                from exc
        record.id = path.rsplit("/", 1)[1]
        record.stat = stat
        record.mark_clean()
        return record.id

    def _write_record(self, path: str, record: ZnodeRecord) -> None:
        """Conditional set; on conflict merge our changes and retry."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            version = record.stat.version if record.stat is not None else -1
            data = record.to_json()
            if self._settle_write(path, record, self._set_async(
                    path, data, version).get):
                return
        raise ZooKeeperError(f"{path}: gave up after {MAX_WRITE_ATTEMPTS} "
                             "conflicting writes")

    def _settle_write(self, path: str, record: ZnodeRecord, reply) -> bool:
        """Take the reply of one conditional set (``reply()`` returns the
        new stat or raises): True when written; False after a version
        conflict, with our changes merged onto the latest version (write
        again)."""
        try:
            stat = reply()
        except BadVersionError:
            self._merge_latest(path, record)
            return False
        except NoNodeError as exc:
            raise NotFound(f"{path} does not exist") from exc
        except KazooException as exc:
            raise ZooKeeperError(f"could not write {path}: {exc!r}") \
                from exc
        record.stat = stat
        record.mark_clean()
        return True

    def _write_record_async(self, path: str, record: ZnodeRecord
                            ) -> "PendingWrite":
        """Start the conditional set of ``_write_record`` without waiting
        for the reply (a loop thread keeps going and checks later)."""
        version = record.stat.version if record.stat is not None else -1
        try:
            result = self._set_async(path, record.to_json(), version)
        except KazooException as exc:
            raise ZooKeeperError(f"could not write {path}: {exc!r}") \
                from exc
        return PendingWrite(self, path, record, result)

    def _set_async(self, path: str, data: bytes, version: int):
        """``kazoo.set_async``, announced to the cache as our own write
        (so the cache need not read back what we wrote)."""
        token = self.caches.expect_write(path, data, version != -1)
        try:
            result = self.kazoo.set_async(path, data, version=version)
        except BaseException:
            self.caches.settle_write(token, None)
            raise
        if token is not None:
            caches = self.caches
            result.rawlink(lambda r: caches.settle_write(
                token, r.value if r.successful() else None))
        return result

    def _commit(self, txn, what: str) -> tuple[list, Exception | None]:
        """Commit a multi-op transaction: (results, the operation error
        that rolled it back or None).  Connection trouble raises
        ``ZooKeeperError`` as for single writes.  Its writes of cached
        znodes are announced to the cache as our own."""
        return self._settle_commit(self._expect_commit(txn), txn.commit,
                                   what)

    def _commit_async(self, txn, what: str) -> "PendingCommit":
        """Send ``txn`` without waiting for it; ``PendingCommit.outcome()``
        (once ``done()``) answers as ``_commit`` would."""
        tokens = self._expect_commit(txn)
        try:
            result = txn.commit_async()
        except BaseException as exc:
            self._commit_failed(tokens, exc, what)
        return PendingCommit(self, tokens, result, what)

    def _expect_commit(self, txn) -> list:
        return [(i, self.caches.expect_write(
            self.kazoo.unchroot(op.path), op.data, op.version != -1))
            for i, op in enumerate(txn.operations)
            if isinstance(op, SetData)]

    def _commit_failed(self, tokens: list, exc: BaseException,
                       what: str) -> None:
        """Forget the expected writes of a transaction that failed whole;
        raise ``ZooKeeperError`` for connection trouble, else ``exc``."""
        for _, token in tokens:
            self.caches.settle_write(token, None)
        if isinstance(exc, KazooException):
            raise ZooKeeperError(f"could not {what}: {exc!r}") from exc
        raise exc

    def _settle_commit(self, tokens: list, get, what: str
                       ) -> tuple[list, Exception | None]:
        try:
            results = get()
        except BaseException as exc:
            self._commit_failed(tokens, exc, what)
        for i, token in tokens:
            stat = results[i] if i < len(results) else None
            self.caches.settle_write(
                token, None if isinstance(stat, Exception) else stat)
        for result in results:
            if isinstance(result, Exception) and not isinstance(
                    result, (RolledBackError, RuntimeInconsistency)):
                return results, result
        return results, None

    def _lock_and_write(self, lock, path: str, record: ZnodeRecord,
                        what: str, timeout: float = 10.0
                        ) -> Exception | None:
        """One transaction: create the lock directory and our contender
        (``locking.add_fresh_acquire``) and write ``record`` conditional on
        its version.  None when it applied (``record.lock`` held, its
        version current); otherwise the error of the operation that failed
        (nothing changed).  Connection trouble leaves it unknown whether it
        applied: our contender tells (``find_own_contender``, which waits
        for the connection as long as the session can live).  If it landed
        the lock is kept and ``record`` is what the znode holds, one
        version on (``_landed``); else the error is raised."""
        txn = self.kazoo.transaction()
        index = locking.add_fresh_acquire(txn, lock)
        txn.set_data(path, record.to_json(), version=record.stat.version)
        try:
            results, error = self._commit(txn, what)
        except ZooKeeperError:
            name = locking.find_own_contender(lock, timeout)
            if name is None:
                raise
            self.log.info("%s: the transaction had landed", what)
            locking.adopt_fresh(lock, f"{lock.path}/{name}")
            self._landed(record)
            record.lock = lock
            return None
        if error is None:
            locking.adopt_fresh(lock, results[index])
            record.lock = lock
            record.stat = results[-1]
            record.mark_clean()
        return error

    @staticmethod
    def _landed(record: ZnodeRecord) -> None:
        """A transaction whose reply was lost landed: its write was
        conditional on ``record``'s version, so the znode now holds
        ``record`` at the next version.  No re-read: one that fails (the
        connection drops again) would leave us holding the lock of a
        record we could not confirm, and letting go of it then leaves the
        znode saying what we did -- a ``pending`` request or a
        ``building`` node -- with nobody serving it until the cleanup
        worker notices.  A write by someone else since then makes our next
        conditional write conflict and merge, as after any read.  (The
        stat's other fields stay those of the version read: nothing
        compares them for a record being written.)"""
        record.stat = record.stat._replace(version=record.stat.version + 1)
        record.mark_clean()

    def _merge_latest(self, path: str, record: ZnodeRecord) -> None:
        try:
            data, stat = self.kazoo.get(path)
        except NoNodeError as exc:
            raise NotFound(f"{path} does not exist") from exc
        self.log.debug("Version conflict on %s; merging our changes", path)
        try:
            fresh = decode_payload(data)
            if fresh is not None:
                record.merge_onto(fresh)
        except BadZnode as exc:
            # The newer version is garbage: ours replaces it.
            self._report_once(path, stat, f"{exc}; overwriting")
        record.stat = stat

    def _refresh_record(self, path: str, record: ZnodeRecord) -> None:
        """Reload ``record`` from ZooKeeper; NotFound/BadZnode if unusable."""
        try:
            data, stat = self.kazoo.get(path)
        except NoNodeError as exc:
            raise NotFound(f"{path} does not exist") from exc
        payload = decode_payload(data)
        if payload is None:
            raise NotFound(f"{path} is empty")
        record.load_fresh(payload, stat)

    def _delete_tree(self, path: str) -> None:
        """Remove ``path`` and everything below it; absent is fine."""
        for _ in range(5):
            try:
                self.kazoo.delete(path, recursive=True)
                return
            except NoNodeError:
                return
            except NotEmptyError:
                # A contender created a lock child meanwhile: go again.
                continue
        raise ZooKeeperError(f"could not remove {path}: children keep "
                             "appearing")


class PendingCommit:
    """A transaction in flight (``StoreBase._commit_async``): ``done()``
    tells whether the reply is in, ``on_done(callback)`` calls
    ``callback()`` when it is (on kazoo's thread, or at once), and
    ``outcome()`` (call once, when done) answers as ``_commit``."""

    def __init__(self, store: StoreBase, tokens: list, result,
                 what: str) -> None:
        self.store = store
        self._tokens = tokens
        self._result = result
        self._what = what

    def done(self) -> bool:
        return self._result.ready()

    def on_done(self, callback) -> None:
        self._result.rawlink(lambda _result: callback())

    def outcome(self) -> tuple[list, Exception | None]:
        return self.store._settle_commit(self._tokens, self._result.get,
                                         self._what)


class PendingWrite:
    """A record write in flight (``StoreBase._write_record_async``).

    ``done()`` tells whether the reply is in; ``result()`` (call once
    done) updates the record's version, or raises as ``_write_record``
    would.  A version conflict is rare (we hold the lock): it is resolved
    by merging and writing synchronously inside ``result()``.
    """

    def __init__(self, store: StoreBase, path: str, record: ZnodeRecord,
                 result) -> None:
        self.store = store
        self.path = path
        self.record = record
        self._result = result

    def done(self) -> bool:
        return self._result.ready()

    def result(self) -> None:
        if not self.store._settle_write(self.path, self.record,
                                        self._result.get):
            self.store._write_record(self.path, self.record)
