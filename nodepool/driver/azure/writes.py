"""PriorityWrites: ARM writes run on the create pool, latest stage first.

Every node needs up to three PUTs in sequence (public IP, NIC, VM).  With
a plain FIFO a burst of N requests queues N public-IP PUTs first, then the
NICs, then the VMs: the first node is ready only after about 2N writes,
although the rate would have allowed one node per three writes from the
start.  Here each write carries a priority -- VM PUTs and DELETEs (they
finish nodes or free quota) before NIC PUTs before public-IP PUTs -- so
launches complete in a pipeline and request latency stays short, at the
same total rate.

How: ``submit`` pushes the call onto a heap and hands the create pool one
anonymous job; a job, when a worker runs it, pops whatever is most urgent
*then*.  Jobs and heap entries are equal in number, so every call runs
exactly once.  The caller gets its own future.

Failure story: an exception from a call lands in its future.  When the
create pool is shut down (provider stopping), queued calls that no job
will run any more are cancelled by ``shutdown()``, so no future is left
pending; ``submit`` then raises RuntimeError, like the pool.

Threads: any thread may submit; the heap is guarded by ``_lock``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future
from typing import Any, Callable

from nodepool.driver.createpool import CreatePool

__all__ = ["PriorityWrites", "URGENT", "NORMAL", "EARLY"]

URGENT = 0     # VM PUTs, DELETEs
NORMAL = 1     # NIC PUTs, lookups
EARLY = 2      # public-IP PUTs: the first step of a launch


class PriorityWrites:
    def __init__(self, pool: CreatePool) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._heap: list[tuple[int, int, Future, Callable, tuple]] = []
        self._seq = itertools.count()

    def submit(self, priority: int, fn: Callable[..., Any], *args: Any
               ) -> Future:
        future: Future = Future()
        with self._lock:
            heapq.heappush(self._heap,
                           (priority, next(self._seq), future, fn, args))
        try:
            self.pool.submit(self._run_next)
        except RuntimeError:
            with self._lock:
                self._heap = [e for e in self._heap if e[2] is not future]
                heapq.heapify(self._heap)
            raise
        return future

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._heap)

    def _run_next(self) -> None:
        with self._lock:
            if not self._heap:
                return
            _, _, future, fn, args = heapq.heappop(self._heap)
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def shutdown(self) -> None:
        """Shut the pool down and cancel every call it will not run."""
        self.pool.shutdown(wait=False)
        with self._lock:
            pending, self._heap = self._heap, []
        for entry in pending:
            entry[2].cancel()
