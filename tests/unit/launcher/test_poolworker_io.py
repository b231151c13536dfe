"""The pool worker's one pool of I/O threads (``IoThreads``) and its
per-pass node lists, without ZooKeeper: the order and the reserve of the
threads, and that filling a list (a lazy cache's ZooKeeper read) holds up
no thread that only needs the worker's ``_lock``."""

from __future__ import annotations

import logging
import threading

import pytest

from nodepool.launcher.poolworker import IoThreads
from nodepool.zk.models import Node, NodeState
from tests.unit.driver.test_ttlcache import wait_until
from tests.unit.launcher.test_poolworker_waiting import make_worker

TIMEOUT = 10.0
log = logging.getLogger("test")


@pytest.fixture
def pool():
    made = []

    def make(size=3, others=2):
        made.append(IoThreads("test-io", size, others, log))
        return made[-1]
    yield make
    for threads in made:
        threads.shutdown()


def test_urgent_calls_go_ahead_of_queued_takes(pool):
    io = pool(size=1, others=1)
    gate = threading.Event()
    order = []
    done = threading.Event()
    io.submit(gate.wait, TIMEOUT)                  # the one thread is busy
    for i in range(30):
        io.submit(order.append, f"take-{i}")
    io.submit(order.append, "fulfil", urgent=True)
    io.submit(done.set)
    gate.set()
    assert done.wait(TIMEOUT)
    assert order[0] == "fulfil"
    assert order[1:] == [f"take-{i}" for i in range(30)]


def test_takes_never_use_the_threads_kept_for_urgent_calls(pool):
    io = pool(size=3, others=2)
    gate = threading.Event()
    running = threading.Semaphore(0)

    def take():
        running.release()
        gate.wait(TIMEOUT)
    for _ in range(30):                          # a burst of slow takes
        io.submit(take)
    for _ in range(2):
        assert running.acquire(timeout=TIMEOUT)
    fulfilled = threading.Event()
    io.submit(fulfilled.set, urgent=True)
    assert fulfilled.wait(TIMEOUT)               # no take finished
    assert not running.acquire(blocking=False)   # only two takes started
    names = {t.name for t in threading.enumerate()
             if t.name.startswith("test-io_")}
    assert names <= {"test-io_0", "test-io_1", "test-io_2"}
    gate.set()


def test_a_failing_call_is_logged_and_the_thread_goes_on(pool, caplog):
    io = pool(size=1, others=1)
    done = threading.Event()

    def boom():
        raise ValueError("boom")
    io.submit(boom)
    io.submit(done.set)
    assert done.wait(TIMEOUT)
    assert "Error in I/O call" in caplog.text


def test_shutdown_runs_what_is_queued_then_refuses():
    io = IoThreads("test-io", 2, 1, log)
    ran = []
    for i in range(30):
        io.submit(ran.append, i, urgent=i % 2 == 0)
    io.shutdown(wait=True)
    assert sorted(ran) == list(range(30))
    with pytest.raises(RuntimeError, match="shut down"):
        io.submit(ran.append, 99)


class SlowCache:
    """A node cache whose reads wait until released (a lazy cache reading
    ZooKeeper)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.reading = threading.Event()
        self.release = threading.Event()
        self.reads = 0

    def iter_nodes(self, cached=True, want=None, shared=False,
                   current=True, ids=None):
        self.reads += 1
        self.reading.set()
        assert self.release.wait(TIMEOUT)
        return [n for n in self.nodes if (want is None or want(n))
                and (ids is None or ids(n.id))]


def spare(node_id: str) -> Node:
    node = Node(id=node_id, provider="p", pool="main", type=["small"])
    node.set_state(NodeState.READY)
    return node


def test_filling_the_node_list_holds_up_no_user_of_the_lock():
    worker, _ = make_worker()
    try:
        cache = worker.zk = SlowCache([spare("0000000001")])
        worker.manager.owns = lambda node: True
        got = []
        filler = threading.Thread(
            target=lambda: got.append(worker.spares("small")))
        filler.start()
        assert cache.reading.wait(TIMEOUT)
        # While the read is out, the I/O threads' bookkeeping goes on.
        acquired = worker._lock.acquire(timeout=TIMEOUT)
        assert acquired
        worker._lock.release()
        assert worker.held() == (set(), set())
        cache.release.set()
        filler.join(TIMEOUT)
        assert [n.id for n in got[0]] == ["0000000001"]
        # Read once per pass: asked again, the list is not read again.
        assert [n.id for n in worker.spares("small")] == ["0000000001"]
        assert cache.reads == 1
        worker._new_pass()
        worker.spares("small")
        assert cache.reads == 2
    finally:
        worker.io.shutdown()


def test_a_list_filled_across_a_new_pass_is_not_kept_for_it():
    worker, _ = make_worker()
    try:
        cache = worker.zk = SlowCache([spare("0000000001")])
        got = []
        filler = threading.Thread(
            target=lambda: got.append(worker.nodes_cached()))
        filler.start()
        assert cache.reading.wait(TIMEOUT)
        worker._new_pass()      # the routing thread starts a pass
        cache.release.set()
        filler.join(TIMEOUT)
        assert len(got[0]) == 1         # the caller gets what it read
        worker.nodes_cached()
        assert cache.reads == 2         # the new pass reads its own
    finally:
        worker.io.shutdown()


def test_shutdown_with_takes_queued_behind_the_cap_ends_every_thread():
    io = IoThreads("test-io", 4, 1, log)
    gate = threading.Event()
    io.submit(gate.wait, TIMEOUT)            # the one take thread is busy
    quick = [threading.Event() for _ in range(3)]
    for event in quick:
        io.submit(event.set, urgent=True)
    # Every thread but the take's idle (how many ran the quick calls
    # depends on scheduling: one may have run several).
    wait_until(lambda: all(e.is_set() for e in quick)
               and io._idle == len(io._threads) - 1)
    ran = []
    for i in range(30):
        io.submit(ran.append, i)             # queued behind the cap
    closer = threading.Thread(target=io.shutdown)
    closer.start()
    gate.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()             # every thread ended
    assert ran == list(range(30))


def test_threads_grown_for_a_burst_end_under_a_steady_trickle(pool):
    # A burst of 6 slow takes needs 6 threads; then one call at a time,
    # quicker than the idle timeout: the threads take turns (none waits
    # the timeout out), yet 5 of them are never needed at once -- they end.
    io = IoThreads("trickle-io", 6, 6, log, idle_timeout=0.5)
    try:
        gate = threading.Event()
        running = threading.Semaphore(0)

        def take():
            running.release()
            gate.wait(TIMEOUT)
        for _ in range(6):
            io.submit(take)
        for _ in range(6):
            assert running.acquire(timeout=TIMEOUT)
        assert io.threads == 6
        gate.set()
        names = set()
        deadline = threading.Event()
        timer = threading.Timer(TIMEOUT, deadline.set)
        timer.start()
        while io.threads > 1 and not deadline.is_set():
            done = threading.Event()
            io.submit(lambda: (names.add(threading.current_thread().name),
                               done.set()))
            assert done.wait(TIMEOUT)
        timer.cancel()
        assert io.threads == 1
        assert len(names) > 1        # the trickle did go round the threads
    finally:
        io.shutdown()


def test_idle_threads_end_and_work_starts_one_again(pool):
    io = IoThreads("idle-io", 3, 3, log, idle_timeout=0.1)
    try:
        gate = threading.Event()
        for _ in range(3):
            io.submit(gate.wait, TIMEOUT)
        wait_until(lambda: io.threads == 3, TIMEOUT)
        gate.set()
        wait_until(lambda: io.threads == 0, TIMEOUT)
        done = threading.Event()
        io.submit(done.set)
        assert done.wait(TIMEOUT) and io.threads <= 1
    finally:
        io.shutdown()
