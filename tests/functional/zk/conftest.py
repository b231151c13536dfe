"""Fixtures for the ZooKeeper data-model tests: connected ``ZooKeeper``
facades on the test's private chroot (plain or mutual TLS)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Callable

import pytest

from nodepool.zk import ZooKeeper, ZooKeeperClient


def config_for(zk_env, tls: bool) -> SimpleNamespace:
    """What ``nodepool.config`` hands to ``ZooKeeperClient.from_config``."""
    raw = zk_env.config(tls=tls)
    servers = [SimpleNamespace(**s) for s in raw["zookeeper-servers"]]
    tls_conf = raw.get("zookeeper-tls")
    return SimpleNamespace(
        zookeeper_servers=servers,
        zookeeper_tls=SimpleNamespace(**tls_conf) if tls_conf else None,
        zookeeper_timeout=10.0)


@pytest.fixture
def zk_config(zk) -> Callable[[bool], SimpleNamespace]:
    """``zk_config(tls)`` → config object for ``from_config``."""
    return lambda tls=True: config_for(zk, tls)


@pytest.fixture
def zk_factory(zk):
    """``zk_factory(tls=False, cache=True, persistent=True, hosts=None,
    timeout=None)`` → a connected ZooKeeper (``persistent=False``: caches
    with one-shot watches; ``hosts``: connect there, e.g. through a
    ``TcpGate``, plaintext; ``timeout``: session timeout)."""
    made: list[ZooKeeper] = []

    def make(tls: bool = False, cache: bool = True,
             persistent: bool = True, hosts: str | None = None,
             timeout: float | None = None) -> ZooKeeper:
        client = ZooKeeperClient.from_config(config_for(zk, tls))
        if hosts is not None or timeout is not None:
            client = ZooKeeperClient(hosts or client.hosts,
                                     timeout=timeout or client.timeout)
        client.connect()
        api = ZooKeeper(client, enable_cache=cache,
                        persistent_watches=persistent)
        api.start_cache()
        made.append(api)
        return api

    yield make
    for api in made:
        api.stop_cache()
        api.client.disconnect()


@pytest.fixture
def zkapi(zk_factory) -> ZooKeeper:
    return zk_factory()


@pytest.fixture
def wait_for() -> Callable:
    """``wait_for(predicate, timeout=10)``: poll until true, else fail."""
    def wait(predicate: Callable[[], object], timeout: float = 10.0,
             message: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {message}")
            time.sleep(0.01)
    return wait
