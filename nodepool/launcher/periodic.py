"""A named background thread that runs ``run_once()`` every ``interval``.

Base of the launcher's periodic workers (deleted-node worker, cleanup
worker).  ``wake()`` runs the next pass early, but never sooner than
``min_interval`` after the previous one ended (changes arrive in bursts:
the wakes of one burst make one pass).

Threads: one, named after the worker (``name``); ``run_once`` runs only
there.  ``start()`` refuses to run twice.

Failure story: passes are skipped while the ZooKeeper session is not
usable (``Session.zk_ready()``) and resume when it is; an exception in a
pass is logged and the next pass runs as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol


class Session(Protocol):
    """What a periodic worker uses of the daemon that runs it
    (``Launcher``): the ZooKeeper facade its passes use and whether the
    session is usable now."""

    zk: object          # nodepool.zk.ZooKeeper

    def zk_ready(self) -> bool: ...


class PeriodicWorker:
    name = "PeriodicWorker"

    def __init__(self, daemon: Session, interval: float,
                 min_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.daemon = daemon
        self.zk = daemon.zk
        self.interval = interval
        self.min_interval = min_interval
        # Spacing of passes (``delay``); a subclass may keep a clock of its
        # own for other rules under ``clock``.
        self._pass_clock = clock
        self.log = logging.getLogger(f"nodepool.{self.name}")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_pass: float | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> None:
        raise NotImplementedError

    def delay(self) -> float:
        """Seconds until a pass may run: what is left of ``min_interval``
        since the previous pass ended (none before the first)."""
        if self._last_pass is None:
            return 0.0
        return max(0.0, self._last_pass + self.min_interval
                   - self._pass_clock())

    def run_pass(self) -> bool:
        """Run one pass unless the session is unusable; True if it ran."""
        if not self.daemon.zk_ready():
            return False
        try:
            self.run_once()
        except Exception:
            self.log.exception("Error in %s", self.name)
        finally:
            self._last_pass = self._pass_clock()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.wait(self.delay()):
                return
            self.run_pass()
