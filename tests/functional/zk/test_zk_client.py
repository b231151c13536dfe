"""Connecting: TLS, plaintext warning, unreachable servers (zookeeper.md
§1)."""

import logging
import socket
import time
from types import SimpleNamespace as NS

import pytest

from nodepool.zk import ZooKeeperClient, ZooKeeperError


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_tls_connection_from_config(zk_config, caplog):
    caplog.set_level(logging.WARNING)
    client = ZooKeeperClient.from_config(zk_config(tls=True))
    client.connect()
    try:
        assert client.connected and not client.suspended
        client.kazoo.ensure_path("/nodepool")
        assert client.kazoo.exists("/nodepool")
    finally:
        client.disconnect()
    assert "unencrypted" not in caplog.text


def test_plaintext_connection_logs_a_warning(zk_config, caplog):
    caplog.set_level(logging.WARNING)
    client = ZooKeeperClient.from_config(zk_config(tls=False))
    client.connect()
    client.disconnect()
    assert "unencrypted" in caplog.text


def test_tls_client_cannot_talk_to_the_plain_port(zk, zk_config):
    config = zk_config(tls=True)
    config.zookeeper_servers[0].port = zk.port
    client = ZooKeeperClient.from_config(config)
    with pytest.raises(ZooKeeperError):
        client.connect(timeout=2)


def test_unreachable_server_fails_within_the_timeout():
    config = NS(zookeeper_servers=[NS(host="127.0.0.1", port=closed_port(),
                                      chroot=None)],
                zookeeper_tls=None, zookeeper_timeout=10.0)
    client = ZooKeeperClient.from_config(config)
    start = time.monotonic()
    with pytest.raises(ZooKeeperError) as info:
        client.connect(timeout=1.5)
    assert time.monotonic() - start < 5
    assert "unreachable" in str(info.value)
    assert not client.connected


def test_connection_listener_sees_states(zk):
    client = ZooKeeperClient(zk.hosts, timeout=5)
    states = []
    client.add_connection_listener(states.append)
    client.connect()
    client.disconnect()
    assert states[0] == "CONNECTED" and states[-1] == "LOST"
