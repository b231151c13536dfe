"""Relay one HTTP request to moto over a kept-alive connection.

Each proxy handler thread serves one client connection, so each keeps its
own ``http.client`` connection to moto in a thread-local: no pool lock, and
N parallel clients give N parallel moto requests.  A reused connection that
moto closed in the meantime fails on send or on reading the status line
before moto saw anything; that single case is retried once on a fresh
connection.  Any other failure (moto gone) becomes a 502 so boto3 reports a
server error instead of the proxy hanging.

Hop-by-hop headers are dropped both ways; the body is relayed as bytes with
an exact Content-Length, everything else is passed through untouched
(Authorization included: moto does not check signatures by default).
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["HOP_BY_HOP", "MotoForwarder", "Reply"]

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection",
                        "transfer-encoding", "te", "trailer", "upgrade",
                        "content-length"})


@dataclass
class Reply:
    """One answer to a client: status, headers (name, value) and body."""
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class MotoForwarder:
    def __init__(self, host: str, port: int, timeout: float = 300.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port,
                                              timeout=self.timeout)
            conn.connect()
            # Same delayed-ACK trap as on the client side of the proxy.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def forward(self, method: str, path: str,
                headers: list[tuple[str, str]], body: bytes) -> Reply:
        # "Expect: 100-continue" was already answered by the proxy's own
        # handler; the body goes to moto in one piece.
        send_headers = [(k, v) for k, v in headers
                        if k.lower() not in HOP_BY_HOP
                        and k.lower() != "expect"]
        if body or method in ("POST", "PUT", "PATCH"):
            send_headers.append(("Content-Length", str(len(body))))
        for attempt in (1, 2):
            reused = getattr(self._local, "conn", None) is not None
            try:
                conn = self._connection()
                conn.putrequest(method, path, skip_host=True,
                                skip_accept_encoding=True)
                for key, value in send_headers:
                    conn.putheader(key, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                return _bad_gateway(exc)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return _bad_gateway(exc)
            if resp.will_close:
                self.close()
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_BY_HOP
                   and k.lower() not in ("server", "date")]
            if method == "HEAD" and resp.getheader("Content-Length"):
                out.append(("Content-Length",
                            resp.getheader("Content-Length")))
            return Reply(resp.status, data, out)
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _bad_gateway(exc: Exception) -> Reply:
    return Reply(502, f"fakeaws: moto did not answer: {exc!r}\n".encode(),
                 [("Content-Type", "text/plain")])
