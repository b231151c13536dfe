"""Run ``nodepool-launcher`` counting its ZooKeeper operations by type.

    python -m tools.zkops OUT.json -- -f -c nodepool.yaml --no-webapp

Every request kazoo sends (create, get_data, set_data, delete, multi, ...)
is counted in the launcher process; the counts are rewritten to
``OUT.json`` every half second (SIGTERM ends the launcher with ``os._exit``,
so nothing can be written at exit), each dump carrying its wall-clock time.  ``tools.bench_core --count-ops``
uses it to print ZooKeeper operations per request.

Attempts to take a request lock are counted too (``locks`` in the dump):
each transaction that creates a request's lock directory and our
contender at once (``fresh``) and each acquire of kazoo's ``Lock`` recipe
on a request lock (``recipe``), with those that did not get the lock
(``fresh_failed``: the directory existed, the request changed, or the
lock root was still missing; ``recipe_failed``: another contender holds
it), and each failure by its reason (``fresh_failed:NodeExistsError``,
``recipe_failed:held``, ...).  Several launchers racing
for the same requests show up there.  Reads (``GetData``) are also counted
by the subtree they read (``reads``: ``requests``, ``nodes``, ``other``):
a launcher's caches read what the others write; ``reads_by_thread``
splits them by subtree and the reading thread's name without its number
(``nodes:DeletedNodeWorker``, ``requests:PoolWorker.p-main``...).  The
dump also names the ZooKeeper session ids of the launcher's clients
(``sessions``), so a test can tell which process owns an ephemeral znode,
and counts the reads of each node znode by id (``node_reads``), so it can
tell whose nodes a launcher read.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import RolledBackError, RuntimeInconsistency
from kazoo.protocol.serialization import Create, GetData, Transaction
from kazoo.recipe.lock import Lock

REQUEST_LOCKS = "/nodepool/requests-lock/"


def is_request_lock_dir(path: str) -> bool:
    """``…/nodepool/requests-lock/<id>`` (a client chroot may prefix it)."""
    _, found, rest = path.partition(REQUEST_LOCKS)
    return bool(found and rest) and "/" not in rest


def fresh_lock(request) -> bool:
    """Is this the one-transaction take of a request lock?"""
    return isinstance(request, Transaction) and any(
        isinstance(op, Create) and is_request_lock_dir(op.path)
        for op in request.operations)


def subtree(path: str) -> str:
    for name in ("requests", "nodes"):
        if f"/nodepool/{name}/" in path:
            return name
    return "other"


def node_id(path: str) -> str | None:
    """The id of ``…/nodepool/nodes/<id>`` (not of paths below it)."""
    _, found, rest = path.partition("/nodepool/nodes/")
    return rest if found and rest and "/" not in rest else None


def thread_kind() -> str:
    """The calling thread's name without its number (``PoolWorker.p-io``
    for every ``PoolWorker.p-io_N``)."""
    return re.sub(r"[-_]?\d+$", "", threading.current_thread().name)


def failure(result) -> str | None:
    """Why a transaction's async result rolled back (or failed): the name
    of the error of the operation that failed, None when it applied."""
    if not result.successful():
        return type(result.exception).__name__
    for r in result.value or ():
        if isinstance(r, Exception) and not isinstance(
                r, (RolledBackError, RuntimeInconsistency)):
            return type(r).__name__
    return None


def install(path: str) -> None:
    counts: collections.Counter = collections.Counter()
    locks: collections.Counter = collections.Counter()
    reads: collections.Counter = collections.Counter()
    by_thread: collections.Counter = collections.Counter()
    clients: set = set()
    node_reads: collections.Counter = collections.Counter()
    lock = threading.Lock()
    original = KazooClient._call
    original_acquire = Lock.acquire

    def count_lock(kind: str, why: str | None) -> None:
        with lock:
            locks[kind] += 1
            if why is not None:
                locks[f"{kind}_failed"] += 1
                locks[f"{kind}_failed:{why}"] += 1

    def counting_call(self, request, async_object):
        name = type(request).__name__
        with lock:
            clients.add(self)
            counts[name] += 1
            if isinstance(request, GetData):
                tree = subtree(request.path)
                reads[tree] += 1
                by_thread[f"{tree}:{thread_kind()}"] += 1
                node = node_id(request.path)
                if node is not None:
                    node_reads[node] += 1
        if fresh_lock(request):
            async_object.rawlink(
                lambda result: count_lock("fresh", failure(result)))
        return original(self, request, async_object)

    def counting_acquire(self, *args, **kwargs):
        if REQUEST_LOCKS not in self.path:
            return original_acquire(self, *args, **kwargs)
        why = "error"
        try:
            got = original_acquire(self, *args, **kwargs)
            why = None if got else "held"
            return got
        except Exception as exc:
            why = type(exc).__name__
            raise
        finally:
            count_lock("recipe", why)

    KazooClient._call = counting_call
    Lock.acquire = counting_acquire

    def dump_forever() -> None:
        while True:
            with lock:
                sessions = sorted(c.client_id[0] for c in clients
                                  if c.client_id)
                data = {"time": time.time(), "ops": dict(counts),
                        "sessions": sessions,
                        "node_reads": dict(node_reads),
                        "locks": dict(locks), "reads": dict(reads),
                        "reads_by_thread": dict(by_thread)}
            with open(path + ".tmp", "w") as f:
                json.dump(data, f)
            os.replace(path + ".tmp", path)
            time.sleep(0.5)

    threading.Thread(target=dump_forever, name="zkops-dump",
                     daemon=True).start()


def main() -> int:
    out, sep, *rest = sys.argv[1:]
    if sep != "--":
        raise SystemExit("usage: python -m tools.zkops OUT.json -- ARGS")
    install(out)
    from nodepool.cmd.launcher import main as launcher_main
    return launcher_main(rest)


if __name__ == "__main__":
    sys.exit(main())
