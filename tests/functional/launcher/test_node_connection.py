"""Cloud nodes (fake driver) and how the launcher checks their connection.

The fake cloud's instances all have the address 127.0.0.1, so a label's
``connection-port`` decides what the launcher talks to: the test sshd, a
plain TCP listener that never says anything (a WinRM port as far as the
launcher can tell), or a port where nothing listens.  As upstream, only
``ssh`` and ``network_cli`` nodes are keyscanned; for any other connection
type the launcher only waits for the port to accept a TCP connection.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.functional.hostkeys import upstream_keys
from tests.functional.launcher.helpers import fake_provider
from tools.sshd import free_port

pytestmark = pytest.mark.functional

NODES = 5
BURST = 30   # the keyscan pool's throughput matters: a burst


@pytest.fixture
def tcp_listener():
    """(port, accepted connections): accepts and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    srv.close()
    for conn in accepted:
        conn.close()


def provider(port: int, connection_type: str = "ssh", **extra) -> dict:
    return fake_provider(
        **{"cloud-images": [{"name": "fake-image", "username": "zuul",
                             "connection-type": connection_type,
                             "connection-port": port}],
           "pools": [{"name": "main", "max-servers": 40,
                      "host-key-checking": True,
                      "labels": [{"name": "small",
                                  "cloud-image": "fake-image"}]}],
           **extra})


def fulfil(env, count: int = NODES, timeout: float = 60) -> dict:
    rid = env.zuul.submit(["small"] * count)
    return env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=timeout)


def test_ssh_nodes_carry_every_key_upstream_records(env, sshd):
    env.write_config([provider(sshd.port)])
    env.start_launcher()
    rids = [env.zuul.submit(["small"] * 10) for _ in range(BURST // 10)]
    expected = upstream_keys(sshd)
    nodes = []
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=90)
        assert req["state"] == "fulfilled", req
        nodes += req["nodes"]
    assert len(nodes) == BURST
    for node_id in nodes:
        node = env.zuul.get_node(node_id)
        assert node["state"] == "ready"
        assert node["host_keys"] == expected


def test_winrm_nodes_ready_once_the_port_accepts_tcp(env, tcp_listener):
    port, accepted = tcp_listener
    env.write_config([provider(port, "winrm")])
    env.start_launcher()
    req = fulfil(env)
    assert req["state"] == "fulfilled", req
    for node_id in req["nodes"]:
        node = env.zuul.get_node(node_id)
        assert node["state"] == "ready"
        assert node["connection_type"] == "winrm"
        assert node["connection_port"] == node["ssh_port"] == port
        assert node["interface_ip"] == "127.0.0.1"
        assert node["host_keys"] == []
    # The launcher did connect (once per node), it just sent nothing.
    assert len(accepted) >= NODES


def test_winrm_node_fails_when_its_port_never_opens(env):
    env.write_config([provider(free_port(), "winrm",
                               **{"boot-timeout": 2, "launch-retries": 1})])
    env.start_launcher()
    req = fulfil(env, count=1)
    assert req["state"] == "failed", req
