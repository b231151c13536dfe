"""Exceptions raised by the ZooKeeper data model.

Callers branch on the class, never on the message::

    ZooKeeperError          anything that went wrong talking to ZooKeeper
    ├── NotFound            the znode (node, request, ...) does not exist
    ├── LockError           a lock was not obtained (held elsewhere,
    │   │                   timeout, connection trouble while contending)
    │   └── LockedObjectGone  the object vanished while or after we
    │                       locked it (also a NotFound)
    └── BadZnode            a znode's data is not an object we understand
                            (corrupt JSON, missing or unknown ``state``)

Iterators never raise ``BadZnode``: they log the path and skip the znode.
"""

from __future__ import annotations

__all__ = ["ZooKeeperError", "NotFound", "LockError", "LockedObjectGone",
           "BadZnode"]


class ZooKeeperError(Exception):
    """Root of every error this package raises."""


class NotFound(ZooKeeperError):
    """The znode an operation needed does not exist (any more)."""


class LockError(ZooKeeperError):
    """The lock was not obtained; the object is unchanged."""


class LockedObjectGone(LockError, NotFound):
    """The object was removed while we contended for, or right after we got,
    its lock.  The lock has already been released again."""


class BadZnode(ZooKeeperError):
    """A znode's payload cannot be turned into a model object."""
