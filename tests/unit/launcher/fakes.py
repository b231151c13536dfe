"""Small fakes shared by the launcher's unit tests."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from nodepool.driver.adapter import Adapter


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


class BareAdapter(Adapter):
    """An adapter of provider ``p`` with no instances, that creates and
    deletes nothing: enough for a ``ProviderManager`` to start."""

    def __init__(self):
        super().__init__(SimpleNamespace(name="p", driver="test", pools={}))

    def list_instances(self):
        return []

    def create_machine(self, spec):
        raise NotImplementedError

    def delete_machine(self, external_id, immediate=False):
        raise NotImplementedError
