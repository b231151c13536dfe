"""A named background thread that runs ``run_once()`` every ``interval``.

Base of the launcher's periodic workers (deleted-node worker, cleanup
worker).  ``wake()`` runs the next pass early, but never sooner than
``min_interval`` after the previous one (changes arrive in bursts).
Passes are skipped while the ZooKeeper session is not usable; an exception
in a pass is logged and the next pass runs as usual.
"""

from __future__ import annotations

import logging
import threading


class PeriodicWorker:
    name = "PeriodicWorker"

    def __init__(self, launcher, interval: float, min_interval: float = 0.0):
        self.launcher = launcher
        self.zk = launcher.zk
        self.interval = interval
        self.min_interval = min_interval
        self.log = logging.getLogger(f"nodepool.{self.name}")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.wait(min(self.interval, self.min_interval)):
                return
            if not self.launcher.zk_ready():
                continue
            try:
                self.run_once()
            except Exception:
                self.log.exception("Error in %s", self.name)
