"""Fixtures for functional tests: a real OpenSSH server on loopback, and
the launchers of a test.

``sshd`` is one server per test session (per xdist worker) with ed25519,
RSA and ECDSA host keys; tests that only scan it share it.  Tests that stop
or restart a server (liveness, retry-until-up) use ``sshd_factory`` to get
their own, stopped automatically at the end of the test.

``env`` is a test's ``LauncherEnv`` on the fake driver (its clouds cleared
before and after); a cloud driver's conftest overrides it with one that
needs its local cloud first.  ``env_b`` is a second installation beside
``env``: another ``LauncherEnv`` on another ZooKeeper chroot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from nodepool.driver import fake
from nodepool.launcher.nodelaunch import (add_launch_listener,
                                          remove_launch_listener)
from tests.functional.launcher.helpers import LauncherEnv
from tools.sshd import SSHServer


@pytest.fixture
def env(zk, tmp_path) -> Iterator[LauncherEnv]:
    fake.CLOUDS.clear()
    with LauncherEnv(zk, tmp_path) as e:
        yield e
    fake.CLOUDS.clear()


@pytest.fixture
def env_b(env, other_zk, tmp_path) -> Iterator[LauncherEnv]:
    path = tmp_path / "b"
    path.mkdir()
    with LauncherEnv(other_zk, path) as e:
        yield e


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


@pytest.fixture
def launch_attempts() -> Iterator[Callable[[str], list[str]]]:
    """``launch_attempts(node_id)``: the results of that node's finished
    launch attempts so far, in order ("ready", "error.<kind>")."""
    events: list = []
    add_launch_listener(events.append)
    yield lambda node_id: [e.result for e in list(events)
                           if e.node_id == node_id]
    remove_launch_listener(events.append)
