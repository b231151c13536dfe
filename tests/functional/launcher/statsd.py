"""A statsd listener for functional tests: a real UDP socket on 127.0.0.1
collecting every line the launcher sends."""

from __future__ import annotations

import socket
import threading

from tests.functional.launcher.helpers import wait_for


class Collector:
    """Every statsd line sent to a UDP port on 127.0.0.1, in order."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                continue
            with self._lock:
                self.lines += data.decode().split("\n")

    def env(self) -> dict[str, str]:
        return {"STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(self.port)}

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def values(self, key: str, kind: str) -> list[str]:
        """Every value sent for ``key`` with type ``kind`` (c, ms, g)."""
        out = []
        for line in self.snapshot():
            name, _, rest = line.partition(":")
            value, _, typ = rest.partition("|")
            if name == key and typ == kind:
                out.append(value)
        return out

    def latest(self, key: str, kind: str = "g") -> str | None:
        values = self.values(key, kind)
        return values[-1] if values else None

    def wait_value(self, key: str, value: str, kind: str = "g",
                   timeout: float = 20.0) -> None:
        wait_for(lambda: self.latest(key, kind) == value, timeout=timeout,
                 what=f"{key}:{value}|{kind} (last: "
                      f"{self.latest(key, kind)})")

    def wait_rounds(self, key: str, rounds: int, kind: str = "g") -> None:
        """Wait until ``key`` has been sent ``rounds`` more times."""
        start = len(self.values(key, kind))
        wait_for(lambda: len(self.values(key, kind)) >= start + rounds,
                 what=f"{rounds} more rounds of {key}")

    def count(self, line: str) -> int:
        return self.snapshot().count(line)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
