"""This installation's id: one random id per ZooKeeper ensemble (chroot).

Two installations -- separate ZooKeepers, or chroots of one -- may share a
cloud account and a provider name.  Node ids are ZooKeeper sequence numbers,
so both have a node ``0000000042``, and upstream's leak rule alone cannot
tell whose instance is whose.  Every resource a launcher creates therefore
carries the id read here (the ``nodepool_installation`` tag), and leak
cleanup leaves resources of other installations alone.

The id lives in ``/nodepool/installation`` (a path upstream Nodepool and
Zuul neither use nor remove) as ``{"installation_id": "<32 hex digits>",
"created": <epoch seconds>}``.  The first launcher of an ensemble creates
it; every later one, and every launcher restart, reads the same id.  The
create is a plain ZooKeeper create: of two launchers starting at once one
wins, and the other gets ``NodeExists`` and reads the winner's id, so they
agree.

Failure story: a payload that is not such an object (hand-edited, written
by something else) raises ``BadZnode`` naming the znode, and the launcher
refuses to start rather than replace it -- a new id would make every
resource of this installation look foreign, and none would ever be cleaned
up again.  Connection trouble raises ``ZooKeeperError`` (the launcher's
start fails; the caller may retry).

Threads: called once per launcher start, on the starting thread.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from .errors import BadZnode, ZooKeeperError
from .paths import INSTALLATION

__all__ = ["installation_id", "INSTALLATION"]

KEY = "installation_id"
# Tag values of every cloud hold this (EC2 and Azure: 256 characters,
# Nova metadata: 255), and it is safe in any of them.
_VALID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def installation_id(kazoo: KazooClient) -> str:
    """The id of the installation ``kazoo`` is connected to (its chroot),
    created on first use."""
    try:
        return _read(kazoo)
    except NoNodeError:
        pass
    payload = json.dumps({KEY: uuid.uuid4().hex, "created": time.time()},
                         sort_keys=True).encode()
    try:
        kazoo.create(INSTALLATION, payload, makepath=True)
    except NodeExistsError:
        pass          # another launcher was first: its id is the one
    except KazooException as exc:
        raise ZooKeeperError(f"could not create {INSTALLATION}: "
                             f"{exc!r}") from exc
    try:
        return _read(kazoo)
    except NoNodeError as exc:
        raise ZooKeeperError(f"{INSTALLATION} vanished right after it was "
                             "created") from exc


def _read(kazoo: KazooClient) -> str:
    try:
        data, _ = kazoo.get(INSTALLATION)
    except NoNodeError:
        raise
    except KazooException as exc:
        raise ZooKeeperError(f"could not read {INSTALLATION}: "
                             f"{exc!r}") from exc
    return parse(data)


def parse(data: bytes | None) -> str:
    """The id of a ``/nodepool/installation`` payload (``BadZnode``
    naming the znode when it holds none)."""
    try:
        payload = json.loads((data or b"").decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadZnode(f"{INSTALLATION}: not JSON ({exc})") from None
    value = payload.get(KEY) if isinstance(payload, dict) else None
    if not isinstance(value, str) or not _VALID.fullmatch(value):
        raise BadZnode(f"{INSTALLATION}: no valid {KEY!r} (8-64 letters, "
                       f"digits, '-' or '_'): {value!r}")
    return value
