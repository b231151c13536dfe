"""Shared fixtures: a real ZooKeeper server per test session (per xdist worker).

``zookeeper_server`` starts one standalone server with a plain and a mutual-TLS
port; ``zk`` hands each test its own chroot on it (removed afterwards), so
tests never see each other's znodes.  Kazoo is never mocked.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.zookeeper import ZooKeeperServer  # noqa: E402


@dataclass
class ZKEnv:
    """Where a test's private ZooKeeper namespace lives."""
    server: ZooKeeperServer
    chroot: str

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int:
        return self.server.secure_port

    @property
    def hosts(self) -> str:
        """Plain connection string including the chroot."""
        return f"{self.server.hosts}{self.chroot}"

    @property
    def tls_hosts(self) -> str:
        return f"{self.server.tls_hosts}{self.chroot}"

    @property
    def certs(self):
        return self.server.certs

    def config(self, tls: bool = True) -> dict:
        """The ``zookeeper-servers``/``zookeeper-tls`` part of a config."""
        if tls:
            return {
                "zookeeper-servers": [{"host": "127.0.0.1",
                                       "port": self.tls_port,
                                       "chroot": self.chroot}],
                "zookeeper-tls": {"cert": self.certs.client_cert,
                                  "key": self.certs.client_key,
                                  "ca": self.certs.ca},
            }
        return {"zookeeper-servers": [{"host": "127.0.0.1",
                                       "port": self.port,
                                       "chroot": self.chroot}]}

    def kazoo(self, tls: bool = False, **kw):
        """A started KazooClient on this chroot (caller stops it)."""
        from kazoo.client import KazooClient
        if tls:
            client = KazooClient(hosts=self.tls_hosts, use_ssl=True,
                                 verify_certs=True, ca=self.certs.ca,
                                 certfile=self.certs.client_cert,
                                 keyfile=self.certs.client_key, **kw)
        else:
            client = KazooClient(hosts=self.hosts, **kw)
        client.start(timeout=15)
        return client


@pytest.fixture(scope="session")
def zookeeper_server(tmp_path_factory):
    server = ZooKeeperServer(str(tmp_path_factory.mktemp("zookeeper")),
                             tls=True)
    server.start()
    yield server
    server.stop()


def _chroot(zookeeper_server):
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    env = ZKEnv(zookeeper_server, chroot)
    from kazoo.client import KazooClient
    root = KazooClient(hosts=zookeeper_server.hosts)
    root.start(timeout=15)
    root.ensure_path(chroot)
    yield env
    try:
        root.delete(chroot, recursive=True)
    finally:
        root.stop()
        root.close()


@pytest.fixture
def zk(zookeeper_server):
    """A fresh chroot on the session's ZooKeeper server."""
    yield from _chroot(zookeeper_server)


@pytest.fixture
def other_zk(zookeeper_server):
    """Another fresh chroot: a second installation, next to ``zk``'s."""
    yield from _chroot(zookeeper_server)
