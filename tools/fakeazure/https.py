"""The HTTPS front of the fake: a threaded ``http.server`` behind TLS.

azure-core refuses to send a bearer token over plain HTTP, so the fake must
speak TLS; the certificate comes from a throw-away CA (``tools.certs``) whose
PEM the client trusts via ``connection_verify`` or ``REQUESTS_CA_BUNDLE``.

Threads: ``serve_forever`` runs in one thread named ``fakeazure-https``;
each connection gets its own daemon thread, and the TLS handshake happens in
that thread (not in ``accept``) so a slow or broken client cannot stall the
listener.  Connections are kept alive (HTTP/1.1) because the SDKs pool them.
A client that drops mid-request only ends its own thread.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .server import LocalAzure


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many pooled connections at once.
    request_queue_size = 128

    def __init__(self, address, handler, context: ssl.SSLContext,
                 azure: "LocalAzure") -> None:
        self.context = context
        self.azure = azure
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a port probe or a client that rejects our CA
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        # Clients closing pooled connections are normal; stay quiet.
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the second
    # waits for the client's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    server: TLSServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(
            parts.query, keep_blank_values=True).items()}
        path = "/" + "/".join(p for p in parts.path.split("/") if p)
        reply = self.server.azure.handle(self.command, path, query,
                                         dict(self.headers.items()), body)
        payload = b"" if reply.body is None else \
            json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", self.server.azure.request_id())
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve


def serve(azure: "LocalAzure", port: int, cert: str, key: str
          ) -> tuple[TLSServer, threading.Thread]:
    """Start listening on 127.0.0.1:``port`` (0 picks a free port)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = TLSServer(("127.0.0.1", port), Handler, context, azure)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A short poll interval keeps stop() (shutdown) fast.
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.05},
                              name="fakeazure-https", daemon=True)
    thread.start()
    return server, thread
