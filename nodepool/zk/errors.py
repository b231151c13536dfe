"""Exceptions raised by the ZooKeeper data model.

Callers branch on the class, never on the message::

    ZooKeeperError          anything that went wrong talking to ZooKeeper
    ├── NotFound            the znode (node, request, ...) does not exist
    ├── LockError           a lock was not obtained (held elsewhere,
    │   │                   timeout, connection trouble while contending)
    │   └── LockedObjectGone  the object vanished while or after we
    │                       locked it (also a NotFound)
    ├── BadZnode            a znode's data is not an object we understand
    │                       (corrupt JSON, a key that does not fit the
    │                       record's schema: ``schema.py``)
    └── Transient           connection trouble a caller reports itself
                            (retry later; see ``is_transient``)

Iterators never raise ``BadZnode``: they quarantine the znode (log its path
and the field once per version, count it, skip it; ``store.py``).

``is_transient(exc)`` tells connection trouble (ConnectionLoss, a timed-out
operation, an expired or closed session; raw kazoo or wrapped in one of the
classes above) from everything else: an operation that failed that way may
or may not have happened on the server, and should be retried (idempotently)
on a later pass rather than treated as a verdict on the object.
"""

from __future__ import annotations

from kazoo.exceptions import (ConnectionClosedError, ConnectionDropped,
                              ConnectionLoss, OperationTimeoutError,
                              SessionExpiredError, SessionMovedError)

__all__ = ["ZooKeeperError", "NotFound", "LockError", "LockedObjectGone",
           "BadZnode", "Transient", "is_transient", "is_closed"]

# kazoo's connection-trouble exceptions (ConnectionClosedError is a
# SessionExpiredError).
_KAZOO_TRANSIENT = (ConnectionLoss, ConnectionDropped, OperationTimeoutError,
                    SessionExpiredError, SessionMovedError)


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
    """A znode's payload cannot be turned into a model object; ``field``
    names the JSON key that does not fit its schema (None when the payload
    is not a JSON object at all)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Transient(ZooKeeperError):
    """Connection trouble detected by the caller (e.g. a lock on a znode we
    just created could not be taken): retry later."""


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is connection
    trouble rather than a verdict on the object."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (Transient,) + _KAZOO_TRANSIENT):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def is_closed(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says our own
    client closed its connection: we are stopping, nothing to report."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionClosedError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
