"""DeadEnd: a loopback port that accepts connections and drops them.

A stand-in for an endpoint that cannot be used at all (a cloud API behind
a dead load balancer): every connection is accepted and ended at once,
before anything is answered (a TLS client sees the end of the stream in
its handshake), and the time it arrived is recorded, so a test can see how
often a client tries.  HTTP clients report it as a failed connection.

>>> with DeadEnd() as dead:
...     url = f"http://127.0.0.1:{dead.port}/"
...     ...
...     dead.connections()        # time.monotonic() of each connection

Threads: one daemon thread, ``deadend-<port>``, accepts; ``stop()`` closes
the socket and joins it.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["DeadEnd"]


class DeadEnd:
    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._times: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "DeadEnd":
        if self._thread is not None:
            raise RuntimeError("DeadEnd already started")
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"deadend-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> "DeadEnd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def connections(self) -> list[float]:
        with self._lock:
            return list(self._times)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._times.append(time.monotonic())
            self._drop(conn)

    @staticmethod
    def _drop(conn: socket.socket) -> None:
        # End our side first and read what the client sent until it hangs
        # up: closing with unread bytes would send a reset instead, and the
        # client would see a reset one time and an end of stream the next.
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(0.2)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()
