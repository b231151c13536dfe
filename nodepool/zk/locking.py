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
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import (KazooException, LockTimeout, NodeExistsError,
                              NoNodeError)
from kazoo.recipe.lock import Lock

from .errors import LockedObjectGone, LockError

__all__ = ["DirLock", "ExistingParentLock", "acquire", "release"]


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
