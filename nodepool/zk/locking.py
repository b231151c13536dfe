"""Lock acquisition on top of kazoo's ``Lock`` recipe (zookeeper.md §7).

We use kazoo's recipe itself, so our contenders are named and ordered
exactly like everyone else's (``<uuid hex>__lock__<seq10>``, lowest sequence
holds the lock).

The one deviation: a *node* lock never creates the node's znode.  kazoo's
recipe calls ``ensure_path`` on the lock directory, which silently
re-creates ``/nodepool/nodes/<id>`` as an empty znode when the node was just
removed; that leaves litter for cleanup.  ``ExistingParentLock`` creates only
the ``lock`` directory and fails with ``NoNodeError`` when the node is gone,
which :func:`acquire` reports as ``LockedObjectGone``.

Failure story: a lock is an ephemeral znode, so it is gone when the session
is LOST even though the kazoo object still says acquired; holders must stop
acting on locked objects while ``client.suspended`` and re-lock afterwards.

Threads: this module starts none and keeps no state; everything runs on the
caller's thread (pool workers and their I/O threads, the deleted-node and
cleanup workers, the CLI).  A ``Lock`` object belongs to the thread that
uses it at a time: kazoo's recipe keeps one method lock so a second thread
calling ``acquire`` on the same object waits for the first (or, not
blocking, fails at once).  ``acquire`` blocks the caller for up to
``timeout`` (a blocking acquire waits on a watch that kazoo's worker thread
fires) and ``find_own_contender`` for up to ``timeout`` or the session
timeout, whichever is longer, polling for the reconnection; neither may run
on kazoo's own threads, which would have to deliver what they wait for.
"""

from __future__ import annotations

import time

from kazoo.client import KazooClient
from kazoo.client import TransactionRequest
from kazoo.exceptions import (KazooException, LockTimeout, NodeExistsError,
                              NoNodeError)
from kazoo.recipe.lock import Lock

from .errors import LockedObjectGone, LockError

__all__ = ["DirLock", "ExistingParentLock", "acquire", "release",
           "add_fresh_acquire", "adopt_fresh", "add_release", "mark_released",
           "find_own_contender"]


class DirLock(Lock):
    """kazoo ``Lock`` whose directory (and parents) are made in one try.

    kazoo's ``ensure_path`` asks ``exists`` first: one extra round trip per
    lock object, and every request lock is a new one.  Creating directly
    costs one round trip whether or not the directory is there.
    """

    def _ensure_path(self) -> None:
        try:
            self.client.create(self.path, makepath=True)
        except NodeExistsError:
            pass
        self.assured_path = True


class ExistingParentLock(Lock):
    """kazoo ``Lock`` that creates its directory but never its parent."""

    def _ensure_path(self) -> None:
        try:
            self.client.create(self.path)
        except NodeExistsError:
            pass
        self.assured_path = True


def acquire(lock: Lock, what: str, blocking: bool, timeout: float | None,
            ephemeral: bool = True) -> None:
    """Acquire ``lock`` or raise; ``what`` names the object in messages."""
    try:
        got = lock.acquire(blocking=blocking, timeout=timeout,
                           ephemeral=ephemeral)
    except LockTimeout as exc:
        raise LockError(f"Timeout trying to acquire lock for {what} "
                        f"(locked by someone else)") from exc
    except NoNodeError as exc:
        raise LockedObjectGone(f"{what} vanished while locking") from exc
    except KazooException as exc:
        raise LockError(f"Could not lock {what}: {exc!r}") from exc
    if not got:
        raise LockError(f"{what} is locked by someone else")


def release(lock: Lock | None) -> None:
    """Release if held; an already vanished lock znode counts as released."""
    if lock is None or not lock.is_acquired:
        return
    try:
        lock.release()
    except NoNodeError:
        lock.is_acquired = False
        lock.node = None


def make_lock(kazoo: KazooClient, path: str, create_parent: bool,
              identifier: str | None = None) -> Lock:
    cls = DirLock if create_parent else ExistingParentLock
    return cls(kazoo, path, identifier)


# -- locks taken and released inside a multi-op transaction ------------------
#
# A lock directory that does not exist yet has no contenders: creating the
# directory and our contender in one transaction takes the lock in one round
# trip instead of the recipe's three (create directory, create contender,
# list contenders), and further operations in the same transaction (e.g. the
# state change the lock protects) happen atomically with it.  If the
# directory already exists the whole transaction fails with
# ``NodeExistsError`` and changes nothing; the caller then falls back to the
# recipe.  The contender is named exactly as the recipe names it, so other
# contenders (kazoo's recipe, upstream Nodepool) order it correctly.


def add_fresh_acquire(txn: TransactionRequest, lock: Lock,
                      ephemeral: bool = True) -> int:
    """Add "create the lock directory and our contender" to ``txn``;
    returns the index of the contender's result."""
    txn.create(lock.path)
    txn.create(lock.create_path, lock.data, ephemeral=ephemeral,
               sequence=True)
    return len(txn.operations) - 1


def adopt_fresh(lock: Lock, created_path: str) -> None:
    """Mark ``lock`` held after a committed :func:`add_fresh_acquire`."""
    # (a transaction's create result may carry the client's chroot)
    lock.node = created_path.rsplit("/", 1)[1]
    lock.assured_path = True
    lock.create_tried = True
    lock.is_acquired = True


def add_release(txn: TransactionRequest, lock: Lock) -> None:
    """Add "delete our contender" to ``txn`` (``lock`` must be held)."""
    txn.delete(f"{lock.path}/{lock.node}")


def mark_released(lock: Lock) -> None:
    """Mark ``lock`` released after a committed :func:`add_release`."""
    lock.is_acquired = False
    lock.node = None


def find_own_contender(lock: Lock, timeout: float) -> str | None:
    """After a transaction with :func:`add_fresh_acquire` failed with
    connection trouble it may or may not have been applied: wait for the
    connection, then look for our contender (named by the lock's unique
    prefix).  Its name when the transaction landed; None when it did not.

    It waits ``timeout`` seconds, and never less than the session timeout:
    a session that outlives the connection is one the client reconnects
    within that time, and its contender must be found, or it would hold
    the lock for good (ephemeral, but of a live session).  Past that the
    session is expired and the contender gone with it."""
    client = lock.client
    deadline = time.monotonic() + max(timeout, session_timeout(client))
    while time.monotonic() < deadline:
        if not client.connected:
            time.sleep(0.05)   # poll for the reconnection, bounded
            continue
        try:
            names = client.get_children(lock.path)
        except NoNodeError:
            return None
        except KazooException:
            time.sleep(0.05)   # the same bounded poll: no spin on errors
            continue
        for name in names:
            if name.startswith(lock.prefix):
                return name
        return None
    return None


def session_timeout(client: KazooClient) -> float:
    """The session timeout the server granted (the one asked for until
    the first connection), in seconds."""
    return client._session_timeout / 1000.0
