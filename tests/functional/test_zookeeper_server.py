"""The test harness itself: a real ZooKeeper, reachable plain and over mutual TLS."""

import ssl

import pytest
from kazoo.handlers.threading import KazooTimeoutError


def test_plain_and_tls_connections_share_one_namespace(zk):
    plain = zk.kazoo()
    secure = zk.kazoo(tls=True)
    try:
        plain.create("/hello", b"world")
        data, _ = secure.get("/hello")
        assert data == b"world"
    finally:
        plain.stop()
        secure.stop()


def test_tls_port_refuses_a_client_without_certificate(zk):
    from kazoo.client import KazooClient
    client = KazooClient(hosts=zk.tls_hosts, use_ssl=True, verify_certs=True,
                         ca=zk.certs.ca, connection_retry={"max_tries": 0})
    with pytest.raises((KazooTimeoutError, ssl.SSLError, OSError)):
        client.start(timeout=3)
    client.stop()
    client.close()
