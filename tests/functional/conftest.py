"""Fixtures for functional tests: a real OpenSSH server on loopback.

``sshd`` is one server per test session (per xdist worker) with ed25519,
RSA and ECDSA host keys; tests that only scan it share it.  Tests that stop
or restart a server (liveness, retry-until-up) use ``sshd_factory`` to get
their own, stopped automatically at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tools.sshd import SSHServer


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Iterator[SSHServer]:
    server = SSHServer(str(tmp_path_factory.mktemp("sshd")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sshd_factory(tmp_path) -> Iterator[Callable[..., SSHServer]]:
    """``sshd_factory(port=None, key_types=...)``: a server, not started."""
    servers: list[SSHServer] = []

    def make(**kw) -> SSHServer:
        server = SSHServer(str(tmp_path / f"sshd{len(servers)}"), **kw)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
