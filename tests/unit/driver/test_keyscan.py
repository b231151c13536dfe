"""KeyscanPool scheduling with a scripted scan function (no network), and
one scan by connection type against loopback sockets.

The real keyscan against a real sshd is covered in
tests/functional/test_keyscan_sshd.py; here the attempt function is a
script so retry, give-up, cancellation, shutdown and the worker bound can be
driven exactly.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from nodepool.driver.errors import LaunchError
from nodepool.driver.keyscan import (KeyscanError, KeyscanPool,
                                     KeyscanUnreachable, scan_failure,
                                     scan_host)

KEYS = ["ssh-ed25519 AAAAtest"]


class ScriptedScan:
    """Fails with ``KeyscanUnreachable`` ``failures`` times, then answers."""

    def __init__(self, failures: int = 0, error: BaseException | None = None):
        self.failures = failures
        self.error = error
        self.calls: list[tuple[str, int, float]] = []
        self.lock = threading.Lock()
        self.called = threading.Condition(self.lock)

    def __call__(self, host: str, port: int, timeout: float) -> list[str]:
        with self.lock:
            self.calls.append((host, port, timeout))
            self.called.notify_all()
            n = len(self.calls)
        if self.error is not None:
            raise self.error
        if n <= self.failures:
            raise KeyscanUnreachable(f"{host} port {port}: refused")
        return KEYS

    def wait_calls(self, n: int, timeout: float = 5.0) -> bool:
        with self.called:
            return self.called.wait_for(lambda: len(self.calls) >= n, timeout)


@pytest.fixture
def make_pool():
    pools = []

    def make(scan, **kw) -> KeyscanPool:
        kw.setdefault("min_backoff", 0.01)
        kw.setdefault("max_backoff", 0.02)
        pool = KeyscanPool(scan=scan, **kw)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown()


def test_success_passes_keys_and_timeout(make_pool):
    scan = ScriptedScan()
    pool = make_pool(scan)
    assert pool.submit("192.0.2.1", 2222, 7.0).result(5) == KEYS
    assert scan.calls == [("192.0.2.1", 2222, 7.0)]


def test_without_host_keys_the_probe_runs_and_is_retried(make_pool):
    scan = ScriptedScan()
    probe = ScriptedScan(failures=2)
    pool = make_pool(scan, probe=probe)
    future = pool.submit("h", 5986, 1.0, retry_until=time.monotonic() + 30,
                         gather_host_keys=False)
    assert future.result(5) == KEYS     # whatever the probe returns
    assert [c[1] for c in probe.calls] == [5986] * 3
    assert scan.calls == []


def test_error_classes():
    assert issubclass(KeyscanUnreachable, KeyscanError)
    assert issubclass(KeyscanError, LaunchError)
    assert KeyscanUnreachable("x").stat_key == "error.keyscan"


def test_unreachable_retried_until_success(make_pool):
    scan = ScriptedScan(failures=3)
    pool = make_pool(scan)
    future = pool.submit("h", 22, 1.0, retry_until=time.monotonic() + 30)
    assert future.result(5) == KEYS
    assert len(scan.calls) == 4


def test_without_deadline_no_retry(make_pool):
    scan = ScriptedScan(failures=1)
    pool = make_pool(scan)
    with pytest.raises(KeyscanUnreachable, match="refused$"):
        pool.submit("h", 22, 1.0).result(5)
    assert len(scan.calls) == 1


def test_permanent_error_not_retried(make_pool):
    scan = ScriptedScan(error=KeyscanError("no usable key"))
    pool = make_pool(scan)
    future = pool.submit("h", 22, 1.0, retry_until=time.monotonic() + 30)
    with pytest.raises(KeyscanError, match="no usable key"):
        future.result(5)
    assert len(scan.calls) == 1


def test_unexpected_exception_reaches_future(make_pool):
    pool = make_pool(ScriptedScan(error=ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):
        pool.submit("h", 22, 1.0, retry_until=time.monotonic() + 30).result(5)


def test_gives_up_at_deadline(make_pool):
    scan = ScriptedScan(failures=10**9)
    pool = make_pool(scan)
    start = time.monotonic()
    future = pool.submit("h", 22, 5.0, retry_until=start + 0.3)
    with pytest.raises(KeyscanUnreachable, match="gave up after") as info:
        future.result(5)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 2.0
    assert len(scan.calls) > 2
    assert isinstance(info.value.__cause__, KeyscanUnreachable)
    # Attempts near the deadline are shortened, but never below 0.5 s.
    assert all(0.5 <= t <= 5.0 for _, _, t in scan.calls)


def test_concurrency_bounded_by_workers(make_pool):
    running = 0
    peak = 0
    cond = threading.Condition()
    release = threading.Event()

    def scan(host, port, timeout):
        nonlocal running, peak
        with cond:
            running += 1
            peak = max(peak, running)
            cond.notify_all()
        release.wait(10)
        with cond:
            running -= 1
        return [host]

    pool = make_pool(scan, workers=2)
    futures = [pool.submit(f"h{i}", 22, 1.0) for i in range(6)]
    with cond:
        assert cond.wait_for(lambda: running == 2, 5)
        # A third scan must not start while two are in flight.
        assert not cond.wait_for(lambda: running > 2, 0.2)
    release.set()
    hosts = sorted(f.result(5)[0] for f in futures)
    assert hosts == [f"h{i}" for i in range(6)]
    assert peak == 2


def test_cancel_while_waiting_to_retry(make_pool):
    scan = ScriptedScan(failures=10**9)
    pool = make_pool(scan, min_backoff=0.05, max_backoff=0.05)
    future = pool.submit("h", 22, 1.0, retry_until=time.monotonic() + 60)
    assert scan.wait_calls(2)
    assert future.cancel()
    # Once cancelled, the retry that was already queued is dropped.
    with scan.lock:
        seen = len(scan.calls)
    assert not scan.wait_calls(seen + 2, timeout=0.3)


def test_shutdown_fails_waiting_scans(make_pool):
    scan = ScriptedScan(failures=10**9)
    pool = make_pool(scan, min_backoff=5.0, max_backoff=5.0)
    future = pool.submit("h", 22, 1.0, retry_until=time.monotonic() + 60)
    assert scan.wait_calls(1)
    # The first attempt failed; wait until it is parked in the retry heap.
    with pool._cond:
        assert pool._cond.wait_for(lambda: pool._waiting, 5)
    pool.shutdown()
    with pytest.raises(KeyscanError, match="shut down"):
        future.result(1)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit("h", 22, 1.0)


# -- one scan in this thread, and how its failure reads -----------------------
@pytest.fixture
def tcp_port():
    """A loopback port that accepts TCP and says nothing (not SSH)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        yield srv.getsockname()[1]


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # closed once the fixture returns


def test_a_type_without_host_keys_needs_only_tcp(tcp_port):
    assert scan_host("127.0.0.1", tcp_port, "winrm", timeout=2) == []


def test_a_type_with_host_keys_is_keyscanned(tcp_port):
    # The port accepts TCP but is no SSH server: no keys, no success.
    for connection_type in ("ssh", "network_cli"):
        with pytest.raises(KeyscanError):
            scan_host("127.0.0.1", tcp_port, connection_type, timeout=0.5)


def test_a_closed_port_is_unreachable_for_every_type(closed_port):
    for connection_type in ("ssh", "winrm"):
        with pytest.raises(KeyscanUnreachable):
            scan_host("127.0.0.1", closed_port, connection_type, timeout=2)


def test_scan_failure_names_what_was_checked():
    error = KeyscanUnreachable("connection refused")
    assert scan_failure("ssh", error) == "keyscan failed: connection refused"
    assert scan_failure("network_cli", error).startswith("keyscan failed")
    assert scan_failure("winrm", error) == \
        "winrm port check failed: connection refused"
