"""A lost ZooKeeper session fails the running launches on the provider's
loop thread, never on the thread that reports the loss (kazoo's connection
thread): the loop alone advances a launch, so none is failed while it is
being advanced."""

from __future__ import annotations

import threading

from nodepool.launcher.provider import ProviderManager
from tests.unit.launcher.fakes import BareAdapter


class Launch:
    """What the loop asks of a launch, and on which thread it was failed."""

    def __init__(self):
        self.done = False
        self.failed_on: str | None = None
        self.failed = threading.Event()

    def session_lost(self):
        self.failed_on = threading.current_thread().name
        self.done = True
        self.failed.set()

    def advance(self):
        return self.done

    def finished(self):
        pass


def test_a_lost_session_fails_every_launch_on_the_loop_thread():
    adapter = BareAdapter()
    manager = ProviderManager(adapter.provider, adapter, None, None, None,
                              zk_ready=lambda: False)   # lost: not ready
    launches = [Launch() for _ in range(30)]
    with manager._lock:
        manager._launches.extend(launches)
    manager.start()
    try:
        reporter = threading.Thread(target=manager.session_lost,
                                    name="kazoo-connection")
        reporter.start()
        reporter.join()
        for launch in launches:
            assert launch.failed.wait(10)
        assert {launch.failed_on for launch in launches} == {"p-loop"}
    finally:
        manager.stop()
