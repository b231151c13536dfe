"""Reading, writing, locking and removing nodes (zookeeper.md §5-7, §9.1).

Failure story: see ``store.py`` for reads/writes.  Locks: ``lock_node``
raises ``LockError`` when the lock is held elsewhere (immediately when
non-blocking, after ``timeout`` otherwise) and ``LockedObjectGone`` when the
node disappears; after acquiring it re-reads the node, because cached copies
may be stale -- unless the watch cache proves the copy current.  ZooKeeper
sends a session's replies and watch notifications in the order of its
commits, and the cache applies each notification on kazoo's connection
thread before that thread reads the next reply: every change committed
before the last reply of our lock's acquisition is applied to the cache
before ``acquire`` returns.  So when the cache's entry has no unread change
(a lazy cache marks a notified change stale until read), no own write of
ours is settling on it (its change leaves the entry unmarked until its
outcome) and the entry's ``mzxid`` is the one of the record we hold, a
re-read would return that very record: it is kept as is, not read nor
decoded.  A change committed after that reply has no order with our lock
either way: a re-read, itself a moment later, could miss it just the same.
Whenever the cache
cannot tell -- entry absent or stale, another ``mzxid``, a write
settling, a reconnection (the resync marks every entry stale before any
reply on the new connection), no cache, or one-shot watch caches, whose
re-reads are not ordered with our replies -- the node is re-read as
before.  ``delete_node`` writes ``deleted`` before removing the znode
and its lock directory, so a racer that locked the node meanwhile sees it is
gone and may finish the removal itself.  While our lock is the only
contender and the node is the version we hold, the write, our release and
both removals are one transaction (one round trip instead of about six on
the provider's loop thread; there is no "meanwhile" for a racer); when it
does not apply (someone waits for the lock, the node changed) or its reply
is lost, the same steps go one by one, each fine when already done.

Threads: any caller's; nothing here keeps state between calls.
"""

from __future__ import annotations

import threading
from typing import Iterator

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from . import locking
from .errors import (BadZnode, LockedObjectGone, LockError, NotFound,
                     ZooKeeperError)
from .node import Node, NodeState
from .paths import NODES, node_lock_path, node_path, request_lock_path
from .request import NodeRequest
from .store import StoreBase

__all__ = ["NodeStore"]


class NodeStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for nodes."""

    def _init_nodes(self) -> None:
        # Ids of the nodes this client created (``created_node_ids``).
        self._created: set[str] = set()
        self._created_lock = threading.Lock()

    def created_node_ids(self) -> set[str]:
        """Ids of the nodes this client created that still exist, as far
        as the cache knows (no read); the others are forgotten."""
        with self._created_lock:
            ids = set(self._created)
        gone = {i for i in ids if not self.node_may_exist(i)}
        if gone:
            with self._created_lock:
                self._created -= gone
        return ids - gone

    def node_may_exist(self, node_id: str) -> bool:
        """False only when the cache knows the node znode is gone (its
        notifications tell, without a read); True while it exists or
        when no cache is running -- never a round trip, since callers ask
        of every node in a loop."""
        path = node_path(node_id)
        if self._use_cache(path, True):
            return self.caches.exists(path)
        return True

    def node_births(self) -> int | None:
        """How many node znodes the cache has seen appear (any launcher's):
        unchanged, no node was added since the caller last asked.  None
        when no cache can tell; never a round trip."""
        if not self._use_cache(NODES, True):
            return None
        return self.caches.births(NODES)

    def get_node(self, node_id: str, cached: bool = False) -> Node | None:
        """The node, or None if absent/unusable (logged)."""
        return self._read_record(Node, node_id, node_path(node_id), cached)

    def iter_nodes(self, cached: bool = True, want=None,
                   shared: bool = False,
                   rejects: list | None = None, ids=None,
                   unlocked: bool = False,
                   current: bool = True) -> Iterator[Node]:
        """Every usable node, in id order; ``want``: only those this
        read-only predicate accepts (the others are not copied);
        ``shared``: read-only records from the cache (``clone()`` to
        modify); ``rejects``: gets the ``Quarantined`` entry of every
        node znode skipped because it cannot be read; ``ids``: only nodes
        whose id this predicate accepts, and with ``unlocked`` only those
        that are probably not locked (``is_locked``): the others are not
        even read (a lazy cache does not fetch their changes); not
        ``current``: a version read before will do (for callers that look
        only at what a node never changes)."""
        if unlocked:
            accept = ids
            ids = (lambda node_id: not self._children(
                node_lock_path(node_id), cached)
                and (accept is None or accept(node_id)))
        yield from self._iter_records(Node, NODES, cached, want, shared,
                                      rejects, ids, current)

    def store_node(self, node: Node) -> None:
        """Create (``id`` None: new sequential znode) or update the node."""
        if node.id is None:
            if node.state is None:
                node.set_state(NodeState.INIT)
            if node.state_time is None:
                node.set_state(node.state)
            if node.created_time is None:
                node.created_time = node.state_time
            self._create_record(NODES + "/", node)
            with self._created_lock:
                self._created.add(node.id)
            return
        self._write_record(node_path(node.id), node)

    def store_node_async(self, node: Node):
        """Start updating an existing node; returns a ``PendingWrite``
        (``done()``, then ``result()``) so a loop need not wait."""
        if node.id is None:
            raise ValueError("store_node_async() updates existing nodes")
        return self._write_record_async(node_path(node.id), node)

    def delete_node(self, node: Node) -> None:
        """Write ``deleted``, then remove the znode and its lock directory
        (in one transaction when nobody else waits for the lock)."""
        self.delete_node_async(node).finish()

    def delete_node_async(self, node: Node) -> "PendingDelete":
        """``delete_node`` without waiting for its transaction: the
        caller polls ``done()`` (or is called back, ``on_done``) and then
        calls ``finish()`` on its own thread, which does the rest as
        ``delete_node`` would.  When the one transaction does not apply
        or its outcome is unknown (a racer waits for the lock, the
        connection failed) ``finish()`` goes step by step and waits."""
        node.set_state(NodeState.DELETED)
        txn = self._delete_txn(node)
        commit = None
        if txn is not None:
            try:
                commit = self._commit_async(txn, f"delete node {node.id}")
            except ZooKeeperError:
                commit = None            # step by step
        return PendingDelete(self, node, commit)

    def _delete_txn(self, node: Node):
        """One transaction: write ``deleted`` (conditional on the version
        we hold), release our lock, remove the lock directory and the
        znode; None when we hold no lock or no version to make it
        conditional on."""
        lock = node.lock
        if lock is None or not lock.is_acquired or node.stat is None:
            return None
        path = node_path(node.id)
        txn = self.kazoo.transaction()
        txn.set_data(path, node.to_json(), version=node.stat.version)
        locking.add_release(txn, lock)
        txn.delete(node_lock_path(node.id))
        txn.delete(path)
        return txn

    def _delete_stepwise(self, node: Node) -> None:
        try:
            self.store_node(node)
        except NotFound:
            pass
        self._delete_tree(node_path(node.id))
        # Our lock child went with the tree.
        locking.release(node.lock)
        node.lock = None

    # -- locks ------------------------------------------------------------
    def lock_node(self, node: Node, blocking: bool = True,
                  timeout: float | None = None, ephemeral: bool = True,
                  identifier: str | None = None,
                  refresh: bool = True) -> None:
        """Lock ``/nodepool/nodes/<id>/lock`` and re-read the node into
        ``node`` (``refresh=False`` skips that for a node this client just
        created and nobody else can have changed yet), unless the watch
        cache proves ``node`` current: then it is kept as is.  ``node``
        must be as read (not changed by the caller).  Raises
        ``LockError`` / ``LockedObjectGone``."""
        lock = locking.make_lock(self.kazoo, node_lock_path(node.id),
                                 create_parent=False, identifier=identifier)
        locking.acquire(lock, f"node {node.id}", blocking, timeout,
                        ephemeral)
        node.lock = lock
        if not refresh or self._held_is_current(node):
            return
        try:
            self._refresh_record(node_path(node.id), node)
        except (NotFound, BadZnode) as exc:
            self.unlock_node(node)
            raise LockedObjectGone(f"node {node.id}: {exc}") from exc
        except BaseException:
            # Locked but not re-read (connection trouble): never keep a
            # lock on what we could not read.
            self._unlock_quietly_node(node)
            raise

    def _held_is_current(self, node: Node) -> bool:
        """Whether the cache proves ``node`` (as read, at its ``mzxid``)
        is still what the znode holds, once our lock is acquired (see the
        module docstring); no read."""
        path = node_path(node.id)
        return (node.stat is not None and self._use_cache(path, True)
                and self.caches.proven_version(path) == node.stat.mzxid)

    def lock_new_node(self, node: Node, timeout: float = 10.0) -> None:
        """Lock a node this client just created and write ``node``.

        Nobody else has locked it yet, so the lock directory, our contender
        and the write go in one transaction (one round trip, and the node
        never shows its new state unlocked).  Should someone have created
        the lock directory meanwhile (a cleanup looking at an ``init``
        node) or written the node, it falls back to waiting for the lock,
        then writing (merging)."""
        lock = locking.make_lock(self.kazoo, node_lock_path(node.id),
                                 create_parent=False)
        error = self._lock_and_write(lock, node_path(node.id), node,
                                     f"lock node {node.id}", timeout)
        if error is None:
            return
        if isinstance(error, NoNodeError):
            raise LockedObjectGone(f"node {node.id} vanished while locking")
        if not isinstance(error, (NodeExistsError, BadVersionError)):
            raise LockError(f"Could not lock node {node.id}: {error!r}")
        self.lock_node(node, blocking=True, timeout=timeout, refresh=False)
        try:
            self.store_node(node)
        except BaseException:
            # Never keep the lock of a node that does not say what we did.
            self.unlock_node(node)
            raise

    def _unlock_quietly_node(self, node) -> None:
        try:
            self.unlock_node(node)
        except Exception:
            self.log.warning("Could not release the lock of node %s; it "
                             "goes with the session", node.id)
            node.lock = None

    def unlock_node(self, node: Node) -> None:
        locking.release(node.lock)
        node.lock = None

    def is_locked(self, obj: Node | NodeRequest, cached: bool = True) -> bool:
        """"Probably locked": the lock directory has contenders.  Good for
        skipping in loops, never a substitute for taking the lock."""
        return bool(self._children(self._lock_dir(obj), cached))

    def lock_holders(self, obj: Node | NodeRequest) -> list[str]:
        """Contender znode names (uncached), lowest sequence first."""
        names = self._children(self._lock_dir(obj), cached=False)
        return sorted(names, key=lambda n: n[-10:])

    @staticmethod
    def _lock_dir(obj: Node | NodeRequest) -> str:
        if isinstance(obj, NodeRequest):
            return request_lock_path(obj.id)
        return node_lock_path(obj.id)

    # -- cleanup helpers --------------------------------------------------
    def delete_empty_node_znodes(self) -> list[str]:
        """Remove node znodes without data (left by lock attempts on
        removed nodes) that nobody is locking; returns the removed ids."""
        removed = []
        for node_id in self._children(NODES, cached=False):
            path = node_path(node_id)
            try:
                data, _ = self.kazoo.get(path)
            except NoNodeError:
                continue
            if data or self._children(node_lock_path(node_id), False):
                continue
            self.log.info("Removing empty node znode %s", path)
            self._delete_tree(path)
            removed.append(node_id)
        return removed

    def erase_provider_nodes(self, provider: str) -> int:
        """Remove every node znode of ``provider`` without locking."""
        count = 0
        for node in self.iter_nodes(cached=False):
            if node.provider == provider:
                self._delete_tree(node_path(node.id))
                count += 1
        return count


class PendingDelete:
    """A node deletion whose transaction is in flight
    (``NodeStore.delete_node_async``)."""

    def __init__(self, store: "NodeStore", node: Node, commit) -> None:
        self.store = store
        self.node = node
        self._commit = commit

    def done(self) -> bool:
        return self._commit is None or self._commit.done()

    def on_done(self, callback) -> None:
        if self._commit is None:
            callback()
        else:
            self._commit.on_done(callback)

    def finish(self) -> None:
        """Settle the transaction; step by step if it did not apply or
        its outcome is unknown.  Raises as ``delete_node`` does."""
        if self._commit is not None:
            try:
                _, error = self._commit.outcome()
            except ZooKeeperError:
                error = True             # outcome unknown
            if error is None:
                # The transaction took our lock with the node.
                locking.mark_released(self.node.lock)
                self.node.lock = None
                return
        self.store._delete_stepwise(self.node)
