"""Helpers for web app tests: an HTTP client that never raises on status,
a ZooKeeper chroot that lives for a whole test module, upload records as a
builder writes them, and what the server-limit tests measure (thread
count, many GETs at once)."""

from __future__ import annotations

import json
import selectors
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)


def get(url: str, accept: str | None = None, method: str = "GET",
        headers: dict[str, str] | None = None) -> Response:
    request = urllib.request.Request(url, method=method)
    if accept is not None:
        request.add_header("Accept", accept)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Response(response.status, response.headers,
                            response.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


class ModuleZK:
    """What ``LauncherEnv`` needs of the ``zk`` fixture, on a chroot of the
    session's server that the caller removes with ``close()``."""

    def __init__(self, server):
        self.server = server
        self.chroot = f"/web-{uuid.uuid4().hex[:12]}"
        from kazoo.client import KazooClient
        self._root = KazooClient(hosts=server.hosts)
        self._root.start(timeout=15)
        self._root.ensure_path(self.chroot)

    def config(self, tls: bool = True) -> dict:
        certs = self.server.certs
        return {"zookeeper-servers": [{"host": "127.0.0.1",
                                       "port": self.server.secure_port,
                                       "chroot": self.chroot}],
                "zookeeper-tls": {"cert": certs.client_cert,
                                  "key": certs.client_key, "ca": certs.ca}}

    def kazoo(self):
        from kazoo.client import KazooClient
        client = KazooClient(hosts=f"{self.server.hosts}{self.chroot}")
        client.start(timeout=15)
        return client

    def close(self) -> None:
        try:
            self._root.delete(self.chroot, recursive=True)
        finally:
            self._root.stop()
            self._root.close()


def write_upload(client, image: str, build: str, provider: str,
                 upload_id: str, **fields) -> None:
    """An image upload record as the builder writes it (zookeeper.md §10)."""
    data = {"state": "ready", "state_time": time.time(),
            "external_id": f"ami-{upload_id}", "external_name": image,
            "format": "raw", "username": "zuul"}
    data.update(fields)
    client.create(f"/nodepool/images/{image}/builds/{build}/providers/"
                  f"{provider}/images/{upload_id}",
                  json.dumps(data).encode(), makepath=True)


def thread_count() -> int:
    """The process's OS threads (every thread, not only Python's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line in /proc/self/status")


def concurrent_gets(port: int, path: str, count: int,
                    timeout: float = 30.0) -> list[tuple[int, float]]:
    """``count`` GETs started at once from one thread (non-blocking
    sockets, so the client never queues them itself); for each, the HTTP
    status and the seconds from ``connect()`` to the end of the answer."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n").encode()
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, list] = {}
    results: list[tuple[int, float]] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            pending[sock] = [time.monotonic(), bytearray()]
            sock.connect_ex(("127.0.0.1", port))
            selector.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} of {count} GETs "
                                     f"unanswered after {timeout} s")
            for key, events in selector.select(timeout=1.0):
                sock = key.fileobj
                if events & selectors.EVENT_WRITE:
                    sock.sendall(request)       # a few bytes: never blocks
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
                if chunk:
                    pending[sock][1] += chunk
                    continue
                started, data = pending.pop(sock)
                selector.unregister(sock)
                sock.close()
                status = int(bytes(data).split(b" ", 2)[1]) if data else 0
                results.append((status, time.monotonic() - started))
    finally:
        for sock in pending:
            sock.close()
        selector.close()
    return results
