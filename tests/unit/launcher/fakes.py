"""Small fakes shared by the launcher's unit tests."""

from __future__ import annotations

import threading


class Clock:
    """An injected clock the test moves by hand (``now``)."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counter:
    """Counts calls; ``wait(n)`` blocks (with a timeout) until the n-th."""

    def __init__(self):
        self.count = 0
        self._changed = threading.Condition()

    def tick(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= n, timeout)
