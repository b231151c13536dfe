"""PeriodicWorker alone, through its ``Session`` seam: a fake daemon whose
session the test turns on and off, an injected clock for the spacing of
passes, and passes observed through a counter (no sleeps)."""

from __future__ import annotations

import logging

import pytest

from nodepool.launcher.periodic import PeriodicWorker
from tests.unit.launcher.fakes import Clock, Counter


class Daemon:
    zk = None

    def __init__(self, ready: bool = True):
        self.ready = ready

    def zk_ready(self) -> bool:
        return self.ready


class Worker(PeriodicWorker):
    name = "TestWorker"

    def __init__(self, daemon, interval=3600.0, min_interval=0.0,
                 clock=None, fail=0):
        kw = {"clock": clock} if clock is not None else {}
        super().__init__(daemon, interval, min_interval, **kw)
        self.passes = Counter()
        self.fail = fail        # the first ``fail`` passes raise

    def run_once(self):
        self.passes.tick()
        if self.passes.count <= self.fail:
            raise RuntimeError(f"pass {self.passes.count} broke")


@pytest.fixture
def running():
    started = []

    def start(worker):
        worker.start()
        started.append(worker)
        return worker
    yield start
    for worker in started:
        worker.stop()
        worker.join()
        assert not worker._thread.is_alive()


def test_wake_runs_a_pass_long_before_the_interval(running):
    worker = running(Worker(Daemon(), interval=3600.0))
    worker.wake()
    assert worker.passes.wait(1)
    worker.wake()
    assert worker.passes.wait(2)


def test_the_interval_runs_passes_without_a_wake(running):
    worker = running(Worker(Daemon(), interval=0.01))
    assert worker.passes.wait(3)


def test_no_pass_while_the_session_is_unusable():
    daemon = Daemon(ready=False)
    worker = Worker(daemon)
    assert worker.run_pass() is False
    assert worker.passes.count == 0
    daemon.ready = True
    assert worker.run_pass() is True
    assert worker.passes.count == 1


def test_a_thread_waits_out_an_unusable_session(running):
    daemon = Daemon(ready=False)
    worker = running(Worker(daemon, interval=0.01))
    assert not worker.passes.wait(1, timeout=0.2)
    daemon.ready = True
    assert worker.passes.wait(1)


def test_a_failed_pass_is_logged_and_the_next_one_runs(running, caplog):
    caplog.set_level(logging.ERROR, logger="nodepool.TestWorker")
    worker = running(Worker(Daemon(), fail=1))
    worker.wake()
    assert worker.passes.wait(1)
    worker.wake()
    assert worker.passes.wait(2)
    errors = [r for r in caplog.records if r.exc_info]
    assert len(errors) == 1
    assert "pass 1 broke" in str(errors[0].exc_info[1])
    assert worker._thread.is_alive()


def test_passes_are_spaced_by_min_interval_after_the_previous_one():
    clock = Clock(100.0)
    worker = Worker(Daemon(), min_interval=0.5, clock=clock)
    assert worker.delay() == 0.0            # nothing ran yet
    worker.run_pass()
    clock.now = 100.2
    assert worker.delay() == pytest.approx(0.3)
    clock.now = 100.5
    assert worker.delay() == 0.0
    clock.now = 107.0
    assert worker.delay() == 0.0


def test_a_failed_pass_counts_for_the_spacing():
    clock = Clock(100.0)
    worker = Worker(Daemon(), min_interval=2.0, clock=clock, fail=1)
    worker.run_pass()
    assert worker.delay() == 2.0


def test_a_skipped_pass_does_not_delay_the_next():
    clock = Clock(100.0)
    worker = Worker(Daemon(ready=False), min_interval=2.0, clock=clock)
    worker.run_pass()
    assert worker.delay() == 0.0


def test_stop_ends_the_thread_without_a_pass():
    worker = Worker(Daemon(), interval=3600.0)
    worker.start()
    worker.stop()
    worker.join(timeout=5)
    assert not worker._thread.is_alive()
    assert worker.passes.count == 0


def test_start_twice_is_refused(running):
    worker = running(Worker(Daemon()))
    with pytest.raises(RuntimeError, match="TestWorker already started"):
        worker.start()
