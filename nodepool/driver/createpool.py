"""CreatePool: runs slow cloud create calls off the provider's loop thread.

A create state machine submits its call here and checks the future on its
next step, so one provider loop can keep every other machine moving while
a create takes a second or more.  The pool must be large enough for the
configured rate to be reachable: with calls of ``latency`` seconds, ``rate``
calls per second need about ``rate * latency`` calls in flight.  Upstream's
fixed 8 threads cap 1.5 s calls at ~5 creates/s whatever the rate says;
``create_pool_size`` sizes from the rate instead, within a hard cap.

Failure story: an exception from a submitted call lands in its future; the
worker carries on.  ``shutdown()`` (provider stopped or reconfigured)
cancels calls that have not started, so no instance is created after the
provider is gone (their futures raise ``CancelledError``), and lets calls
already in flight finish: a cloud call cannot be recalled, and its future
still reports the instance so the caller can clean it up.

Threads: up to ``workers`` threads named ``<name>-<role>-N`` (role
``create`` unless the owner names another), started on
demand; each owns nothing but the call it runs, and one that found nothing
to run for ``idle_timeout`` seconds (a minute) ends, so the pool shrinks
back after a burst instead of keeping its high-water mark of threads (and
their cloud connections) for good.  Under a steady trickle of calls no
worker ever waits a minute (the queue hands each call to the one waiting
longest, so they take turns): there ``IdleSurplus`` counts the workers
that stayed idle through a whole minute, and that many end after their
next call.  The counts (``_idle``, ``_queued``,
``_busy``) and the thread list are guarded by ``_lock``; a worker retires
under it only while nothing is queued, and ``submit`` starts a new one
under it when the queued calls outnumber the idle workers.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

__all__ = ["CreatePool", "IdleSurplus", "create_pool_size"]

log = logging.getLogger(__name__)

# A worker idle this long ends (submit starts another when work comes).
IDLE_TIMEOUT = 60.0
# Threads for an unlimited rate: the cloud's own throttling is then the only
# brake, and more parallel creates would mostly earn throttling errors.
UNLIMITED_WORKERS = 16


class IdleSurplus:
    """How many of a pool's threads a whole window went without.

    A pool that hands each call to the thread waiting longest (a queue, a
    condition) keeps every thread busy in turn under a steady trickle of
    calls, so none waits out an idle timeout and a pool grown for one peak
    keeps its peak for good.  Instead the pool tells ``took`` how many of
    its threads still wait each time one takes a call: the fewest seen
    over ``window`` seconds were never needed in it, and that many may
    end.  Not thread-safe: the pool calls it under its own lock.
    """

    def __init__(self, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._since = clock()
        self._fewest: int | None = None

    def took(self, idle: int) -> int:
        """A thread took a call while ``idle`` others wait: the threads
        that may end now (0 but once a window)."""
        if self._fewest is None or idle < self._fewest:
            self._fewest = idle
        now = self._clock()
        if now - self._since < self.window:
            return 0
        surplus, self._fewest, self._since = self._fewest, None, now
        return surplus


def create_pool_size(rate: float, latency: float = 1.5, cap: int = 64) -> int:
    """Threads needed so ``rate`` creates/s are reachable at ``latency`` s per call.

    25 % headroom plus one covers latency jitter; the result is at least 1
    and at most ``cap``.  ``rate`` 0 (unlimited) gets a bounded default.
    """
    if rate <= 0:
        wanted = UNLIMITED_WORKERS
    else:
        wanted = math.ceil(rate * latency * 1.25) + 1
    return max(1, min(wanted, cap))


class CreatePool:
    """A bounded pool whose ``submit`` never blocks the caller.

        pool = CreatePool("aws-us-east-1", create_pool_size(rate=2.0))
        future = pool.submit(client.run_instances, **params)
        ...                        # next step: if future.done(): future.result()
        pool.shutdown()
    """

    def __init__(self, name: str, workers: int,
                 idle_timeout: float = IDLE_TIMEOUT, *, role: str = "create",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if workers < 1:
            raise ValueError(f"create pool {name} needs at least one worker")
        self.name = name
        self.role = role        # threads are <name>-<role>-N
        self.workers = workers
        self.idle_timeout = idle_timeout
        self._surplus = IdleSurplus(idle_timeout, clock)
        self._retiring = 0      # workers to end after their call
        self._spawned = 0
        # Unbounded on purpose: submit must never block a state machine; the
        # callers (bounded by max-servers and quota) bound the queue.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0
        self._busy = 0
        self._started = False
        self._stopped = False

    @property
    def busy(self) -> int:
        """Calls running now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Calls submitted but not yet started."""
        return self._queued

    def start(self) -> None:
        """Start every worker now (optional: ``submit`` starts them on demand)."""
        with self._lock:
            if self._started or self._stopped:
                raise RuntimeError(f"create pool {self.name} already started")
            self._started = True
            while len(self._threads) < self.workers:
                self._spawn()

    def submit(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Future:
        """Queue ``fn(*args, **kw)``; its outcome arrives in the returned future."""
        future: Future = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"create pool {self.name} is shut down")
            self._queued += 1
            self._queue.put((future, fn, args, kw))
            if self._queued > self._idle and len(self._threads) < self.workers:
                self._spawn()
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Cancel calls not yet started, then stop the workers (once only)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"create pool {self.name} already shut down")
            self._stopped = True
            threads = list(self._threads)
        cancelled = 0
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._queued -= 1
            entry[0].cancel()
            cancelled += 1
        for _ in threads:
            self._queue.put(None)  # one stop marker per worker
        log.debug("Create pool %s shut down, %d pending calls cancelled",
                  self.name, cancelled)
        if wait:
            for thread in threads:
                thread.join()

    @property
    def threads(self) -> int:
        """Workers alive now (they start on demand and retire when idle)."""
        with self._lock:
            return len(self._threads)

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._work, daemon=True,
            name=f"{self.name}-{self.role}-{self._spawned}")
        self._spawned += 1
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                entry = self._queue.get(timeout=self.idle_timeout)
            except queue.Empty:
                if self._retire():
                    return
                continue
            with self._lock:
                self._idle -= 1
                if entry is not None:
                    self._queued -= 1
                    self._busy += 1
                    self._retiring = min(
                        self._retiring + self._surplus.took(self._idle),
                        len(self._threads) - 1)
            if entry is None:
                return
            try:
                self._run(*entry)
            finally:
                with self._lock:
                    self._busy -= 1
            if self._surplus_ends():
                return

    def _surplus_ends(self) -> bool:
        """After a call: end this worker if the pool has one too many
        and nothing is queued (under ``_lock``)."""
        with self._lock:
            if not self._retiring or self._queued or self._stopped:
                return False
            self._retiring -= 1
            self._threads.remove(threading.current_thread())
            return True

    def _retire(self) -> bool:
        """An idle worker's timeout: end it unless calls are queued (one
        of them is then on its way to this worker or another idle one)."""
        with self._lock:
            self._idle -= 1
            if self._queued or self._stopped:
                return self._stopped
            self._threads.remove(threading.current_thread())
            return True

    @staticmethod
    def _run(future: Future, fn: Callable[..., Any], args: tuple,
             kw: dict[str, Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return  # the caller gave up on it before it started
        try:
            result = fn(*args, **kw)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
