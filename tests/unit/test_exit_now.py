"""SIGTERM exits promptly even when closing the ZooKeeper session hangs."""

from __future__ import annotations

import threading

from nodepool.cmd.launcher import exit_now


class Client:
    def __init__(self, hang: bool):
        self.hang = hang
        self.release = threading.Event()
        self.closed = False

    def disconnect(self):
        if self.hang:
            self.release.wait(30)
        self.closed = True


def test_a_hanging_close_exits_after_the_grace():
    client = Client(hang=True)
    exits = []
    exited = threading.Event()

    def exit(code):
        exits.append((code, threading.current_thread().name))
        exited.set()
    closer = threading.Thread(target=exit_now, args=(client, 0.2, exit))
    closer.start()
    assert exited.wait(10)
    assert exits == [(0, "exit-deadline")]
    assert not client.closed
    client.release.set()
    closer.join(10)


def test_a_prompt_close_exits_once_without_waiting_for_the_grace():
    client = Client(hang=False)
    exits = []
    exit_now(client, 30.0, exits.append)
    assert client.closed
    assert exits == [0]


def test_a_failing_close_still_exits():
    class Broken:
        def disconnect(self):
            raise RuntimeError("connection closed")
    exits = []
    exit_now(Broken(), 30.0, exits.append)
    assert exits == [0]


def test_a_closed_connection_is_told_from_other_trouble():
    from kazoo.exceptions import ConnectionClosedError, ConnectionLoss

    from nodepool.zk import errors
    try:
        try:
            raise ConnectionClosedError("Connection has been closed")
        except ConnectionClosedError as exc:
            raise errors.ZooKeeperError("could not lock request") from exc
    except errors.ZooKeeperError as wrapped:
        assert errors.is_closed(wrapped) and errors.is_transient(wrapped)
    assert not errors.is_closed(ConnectionLoss())
    assert errors.is_transient(ConnectionLoss())
