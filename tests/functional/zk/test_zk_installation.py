"""The installation id (``nodepool.zk.installation``): made once per
ensemble/chroot, agreed on by launchers starting at once, never replaced."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from kazoo.client import KazooClient

from nodepool.zk.errors import BadZnode
from nodepool.zk.installation import INSTALLATION, installation_id


def _clients(zk_env, count: int) -> list[KazooClient]:
    return [zk_env.kazoo() for _ in range(count)]


def _close(clients) -> None:
    for client in clients:
        client.stop()
        client.close()


def test_created_once_and_read_back(zk):
    first, second = clients = _clients(zk, 2)
    try:
        made = installation_id(first)
        assert len(made) == 32 and int(made, 16) >= 0
        assert installation_id(second) == made
        assert installation_id(first) == made
        data, _ = second.get(INSTALLATION)
        assert json.loads(data)["installation_id"] == made
    finally:
        _close(clients)


def test_launchers_starting_at_once_agree(zk):
    # 30 connections race for the first create: one wins, the others read
    # the winner's id.
    clients = _clients(zk, 30)
    barrier = threading.Barrier(len(clients))
    found: list[str] = []
    errors: list[BaseException] = []

    def start(client) -> None:
        barrier.wait()
        try:
            found.append(installation_id(client))
        except BaseException as exc:      # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert len(found) == 30 and len(set(found)) == 1
    finally:
        _close(clients)


def test_each_chroot_is_its_own_installation(zk, zookeeper_server):
    other_root = f"/test-{uuid.uuid4().hex[:12]}"
    root = KazooClient(hosts=zookeeper_server.hosts)
    root.start(timeout=15)
    root.ensure_path(other_root)
    ours = zk.kazoo()
    theirs = KazooClient(hosts=zookeeper_server.hosts + other_root)
    theirs.start(timeout=15)
    try:
        assert installation_id(ours) != installation_id(theirs)
    finally:
        _close([ours, theirs])
        root.delete(other_root, recursive=True)
        _close([root])


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]",
                                     b'{"installation_id": 7}',
                                     b'{"installation_id": "a b/c"}'])
def test_a_bad_payload_is_refused_and_kept(zk, payload):
    client = zk.kazoo()
    try:
        client.create(INSTALLATION, payload, makepath=True)
        with pytest.raises(BadZnode, match="/nodepool/installation"):
            installation_id(client)
        assert client.get(INSTALLATION)[0] == payload
    finally:
        _close([client])
