"""keyscan, KeyscanPool and check_connection against a real OpenSSH sshd.

What a scan must return is what upstream Nodepool's nodescan records for
the same server (``tests.functional.hostkeys.upstream_keys``).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from nodepool.driver.keyscan import (KeyscanError, KeyscanPool,
                                     KeyscanUnreachable, check_connection,
                                     gathers_host_keys, keyscan, probe_port)
from tests.functional.hostkeys import upstream_keys
from tools.sshd import free_port

pytestmark = pytest.mark.functional


@pytest.fixture
def pool():
    p = KeyscanPool(workers=20, name="test-keyscan", min_backoff=0.05,
                    max_backoff=0.2)
    yield p
    p.shutdown()


@pytest.fixture
def silent_listener():
    """A port that accepts TCP (kernel backlog) but never says anything."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
def banner_server():
    """``banner_server(lines)``: a port that sends ``lines`` and then waits."""
    socks, stop = [], threading.Event()

    def start(payload: bytes) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.1)
        socks.append(srv)

        def serve():
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                socks.append(conn)
                conn.sendall(payload)

        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    yield start
    stop.set()
    for s in socks:
        s.close()


def test_keys_as_upstream_nodescan_records_them(sshd):
    expected = upstream_keys(sshd)
    # The harness has one key of each kind; RSA signs twice.
    assert len(expected) == len(sshd.host_keys) + 1
    assert keyscan("127.0.0.1", sshd.port, timeout=10) == expected


def test_selected_key_type(sshd):
    rsa = [k for k in sshd.host_keys if k.startswith("ssh-rsa ")]
    assert keyscan("127.0.0.1", sshd.port, key_types=["ssh-rsa"]) == rsa


def test_each_rsa_algorithm_is_one_exchange(sshd):
    (rsa,) = [k for k in sshd.host_keys if k.startswith("ssh-rsa ")]
    assert keyscan("127.0.0.1", sshd.port,
                   key_types=["rsa-sha2-256", "rsa-sha2-512"]) == [rsa, rsa]


def test_hostname_resolution(sshd):
    # "localhost" may resolve to ::1 first, where nothing listens.
    assert keyscan("localhost", sshd.port) == upstream_keys(sshd)


def test_missing_key_types_are_skipped(sshd_factory):
    server = sshd_factory(key_types=("ed25519",)).start()
    assert keyscan("127.0.0.1", server.port) == server.host_keys
    assert server.host_keys == upstream_keys(server)
    with pytest.raises(KeyscanError, match="none of the host key types") as e:
        keyscan("127.0.0.1", server.port, key_types=["ssh-rsa"])
    assert not isinstance(e.value, KeyscanUnreachable)


def test_parallel_scans(sshd, pool):
    futures = [pool.submit("127.0.0.1", sshd.port, 15) for _ in range(20)]
    expected = upstream_keys(sshd)
    assert [f.result(30) for f in futures] == [expected] * 20


def test_refused_is_quick():
    port = free_port()
    start = time.monotonic()
    with pytest.raises(KeyscanUnreachable, match="refused") as e:
        keyscan("127.0.0.1", port, timeout=10)
    assert time.monotonic() - start < 2
    assert e.value.stat_key == "error.keyscan"


def test_timeout_respected_when_server_is_silent(silent_listener):
    start = time.monotonic()
    with pytest.raises(KeyscanUnreachable):
        keyscan("127.0.0.1", silent_listener, timeout=0.5)
    assert 0.4 <= time.monotonic() - start < 3


def test_old_protocol_is_permanent_error(banner_server):
    port = banner_server(b"SSH-1.5-ancient\r\n")
    with pytest.raises(KeyscanError, match="protocol error.*1.5") as e:
        keyscan("127.0.0.1", port, timeout=5)
    assert not isinstance(e.value, KeyscanUnreachable)


def test_retry_until_server_comes_up(sshd_factory):
    port = free_port()
    server = sshd_factory(port=port)
    failed = threading.Event()
    attempts = []

    def scan(host, port, timeout):
        attempts.append(time.monotonic())
        try:
            return keyscan(host, port, timeout)
        except KeyscanUnreachable:
            failed.set()
            raise

    pool = KeyscanPool(workers=2, scan=scan, min_backoff=0.05,
                       max_backoff=0.2)
    try:
        future = pool.submit("127.0.0.1", port, 5,
                             retry_until=time.monotonic() + 30)
        assert failed.wait(10), "the first scan should be refused"
        assert not future.done()
        server.start()
        assert future.result(20) == upstream_keys(server)
        assert len(attempts) >= 2
    finally:
        pool.shutdown()


def test_retry_gives_up_at_deadline(pool):
    port = free_port()
    start = time.monotonic()
    future = pool.submit("127.0.0.1", port, 5, retry_until=start + 1.0)
    with pytest.raises(KeyscanUnreachable, match="gave up after"):
        future.result(10)
    assert 1.0 <= time.monotonic() - start < 4


def test_check_connection(sshd, silent_listener):
    assert check_connection("127.0.0.1", sshd.port, 5)
    assert not check_connection("127.0.0.1", free_port(), 5)
    start = time.monotonic()
    assert not check_connection("127.0.0.1", silent_listener, 0.3)
    assert time.monotonic() - start < 2


def test_check_connection_banner_after_other_lines(banner_server):
    assert check_connection(
        "127.0.0.1", banner_server(b"welcome\r\nSSH-2.0-Test\r\n"), 5)
    http = banner_server(b"HTTP/1.1 400\r\n")
    assert not check_connection("127.0.0.1", http, 0.3)


def test_liveness_follows_server(sshd_factory):
    server = sshd_factory().start()
    assert check_connection("127.0.0.1", server.port, 5)
    server.kill()
    assert not check_connection("127.0.0.1", server.port, 1)
    server.start()
    assert check_connection("127.0.0.1", server.port, 5)
    assert keyscan("127.0.0.1", server.port) == upstream_keys(server)


# -- connection types without host keys (winrm, ...) -------------------------

def test_only_ssh_and_network_cli_gather_host_keys():
    assert gathers_host_keys("ssh") and gathers_host_keys("network_cli")
    assert not gathers_host_keys("winrm")
    assert not gathers_host_keys("kubectl")


def test_probe_port_needs_only_tcp(silent_listener, sshd):
    # A port that accepts and says nothing is enough: no banner, no keys.
    assert probe_port("127.0.0.1", silent_listener, 2) == []
    assert probe_port("127.0.0.1", sshd.port, 2) == []
    with pytest.raises(KeyscanUnreachable, match="refused"):
        probe_port("127.0.0.1", free_port(), 2)


def test_pool_waits_for_port_without_key_exchange(pool):
    port = free_port()
    future = pool.submit("127.0.0.1", port, 2, gather_host_keys=False,
                         retry_until=time.monotonic() + 30)
    # Refused for now: the pool retries until something listens.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", port))
        srv.listen(4)
        assert future.result(20) == []


def test_pool_gives_up_on_a_port_nobody_opens(pool):
    future = pool.submit("127.0.0.1", free_port(), 2,
                         gather_host_keys=False,
                         retry_until=time.monotonic() + 0.5)
    with pytest.raises(KeyscanUnreachable, match="gave up after"):
        future.result(10)
