"""Fixtures for ``nodepool`` CLI tests: a config file on the test's private
ZooKeeper chroot (mutual TLS), a data-model handle to seed and inspect
ZooKeeper, and ``cli(*argv)`` running ``main()`` in-process with a frozen
clock, returning (exit status, stdout, stderr)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import pytest
import yaml

from nodepool.cmd.nodepoolcmd import main
from nodepool.zk import ZooKeeper, ZooKeeperClient

# 2023-11-14 22:13:20 UTC: every golden Age is relative to this.
NOW = 1_700_000_000.0

STATIC_PROVIDER = {
    "name": "static-lab", "driver": "static",
    "pools": [{"name": "main", "nodes": [
        {"name": "host1.example.com", "labels": ["small"],
         "host-key-checking": False}]}],
}


def write_config(path, zk_section: dict, timeout: float = 10.0) -> str:
    data = dict(zk_section)
    data["zookeeper-timeout"] = timeout
    data["labels"] = [{"name": "small"}]
    data["providers"] = [STATIC_PROVIDER]
    path.write_text(yaml.safe_dump(data))
    return str(path)


@dataclass
class CLIResult:
    rc: int
    out: str
    err: str


@pytest.fixture
def config_file(zk, tmp_path) -> str:
    return write_config(tmp_path / "nodepool.yaml", zk.config(tls=True))


@pytest.fixture
def make_config(tmp_path) -> Callable[..., str]:
    """``make_config(zk_section, timeout=10.0, name=...)`` → config path."""
    def make(zk_section: dict, timeout: float = 10.0,
             name: str = "custom.yaml") -> str:
        return write_config(tmp_path / name, zk_section, timeout)
    return make


@pytest.fixture
def seed(zk):
    """A ZooKeeper facade (plain connection, no cache) for seeding."""
    client = ZooKeeperClient(zk.hosts)
    client.connect()
    yield ZooKeeper(client, enable_cache=False)
    client.disconnect()


@pytest.fixture
def cli(config_file, capsys) -> Callable[..., CLIResult]:
    def run(*argv: str, config: str | None = None, stdin: str = "",
            clock: Callable[[], float] = lambda: NOW) -> CLIResult:
        capsys.readouterr()
        rc = main(["-c", config or config_file, *argv], clock=clock,
                  stdin=io.StringIO(stdin))
        captured = capsys.readouterr()
        return CLIResult(rc, captured.out, captured.err)
    return run
