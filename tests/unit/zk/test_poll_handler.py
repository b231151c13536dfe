"""The poll()-based ``select`` kazoo's connection thread uses (client.py)."""

from __future__ import annotations

import socket
import time

from nodepool.zk.client import PollHandler


def test_select_reports_readable_and_writable_objects():
    handler = PollHandler()
    a, b = socket.socketpair()
    try:
        r, w, x = handler.select([a, b], [a], [], 0)
        assert r == [] and w == [a] and x == []
        b.send(b"x")
        r, w, _ = handler.select([a, b.fileno()], [], [], 1.0)
        assert r == [a] and w == []
    finally:
        a.close()
        b.close()


def test_select_waits_for_the_timeout_when_nothing_happens():
    handler = PollHandler()
    a, b = socket.socketpair()
    try:
        start = time.monotonic()
        assert handler.select([a], [], [], 0.2) == ([], [], [])
        assert time.monotonic() - start >= 0.19
    finally:
        a.close()
        b.close()


def test_select_sees_a_closed_peer_as_readable():
    handler = PollHandler()
    a, b = socket.socketpair()
    b.close()
    try:
        r, _, _ = handler.select([a], [], [], 1.0)
        assert r == [a]
        assert a.recv(1) == b""
    finally:
        a.close()
