"""The threaded HTTP front that boto3 talks to instead of moto.

Routing of one request:

* ``/_fake/...``                       -> :class:`ControlPlane` (JSON)
* with the flag ``refuse_credentials``: every EC2 / Service Quotas call
  -> ``AuthFailure`` / ``UnrecognizedClientException`` (a wrong key)
* ``X-Amz-Target: ServiceQuotasV20190624.*`` -> the Service Quotas fake
* form-encoded POST signed for ``ec2`` -> the EC2 pipeline (``ec2.py``)
* anything else (S3, STS, ``/moto-api/``, ...) -> moto, untouched

The server is a stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with
keep-alive: one thread per client connection, which is what lets a held
RunInstances (injected latency) overlap with other calls.  Threads are
daemons and every hold waits on ``stopping``, so :meth:`stop` returns
promptly even with calls in flight; their clients then see the connection
close.  The region of a call comes from its SigV4 credential scope
(``Credential=AKID/DATE/REGION/SERVICE/aws4_request``); unsigned calls
count as ``us-east-1``.

Thread ownership: the serve loop runs in a thread named
``fakeaws-proxy``; handler threads share the Behaviour, Stats and
forwarder, each of which locks its own state.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tools.fakeaws.config import Behaviour
from tools.fakeaws.control import ControlPlane
from tools.fakeaws.ec2 import EC2Call, EC2Context, handle_ec2_call
from tools.fakeaws.faults import ERROR_CODES, ec2_error_body
from tools.fakeaws.forward import MotoForwarder, Reply
from tools.fakeaws.ledger import Ledger
from tools.fakeaws.quotas import TARGET_PREFIX, answer_quota_call
from tools.fakeaws.stats import Stats

__all__ = ["FakeAWSProxy"]

_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")
_FORM = "application/x-www-form-urlencoded"


def credential_scope(authorization: str | None) -> tuple[str, str | None]:
    """(region, service) of a SigV4 Authorization header."""
    match = _SCOPE.search(authorization or "")
    if match is None:
        return "us-east-1", None
    return match.group(1), match.group(2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5
    # would make the kernel drop SYNs and add 1 s retransmit stalls.
    request_queue_size = 256
    proxy: "FakeAWSProxy"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; with Nagle on, the
        # body then waits for the client's delayed ACK: +40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:
        log = self.server.proxy.log
        if log is not None:
            log("%s %s" % (self.address_string(), format % args))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        reply = self.server.proxy.route(self.command, self.path,
                                        list(self.headers.items()), body)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        length = None
        for key, value in reply.headers:
            if key.lower() == "content-length":
                length = value  # HEAD: moto's length, no body follows
                continue
            self.send_header(key, value)
        self.send_header("Content-Length", length or str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch
    do_PATCH = do_OPTIONS = _dispatch


class FakeAWSProxy:
    """The front server; ``port=0`` picks a free port.

    >>> proxy = FakeAWSProxy(moto_host, moto_port, Behaviour(), reset_moto)
    >>> proxy.start(); proxy.endpoint_url
    """

    def __init__(self, moto_host: str, moto_port: int, behaviour: Behaviour,
                 reset_moto: Callable[[], None], port: int = 0,
                 log: Callable[[str], None] | None = None,
                 moto_cpu: Callable[[], float | None] = lambda: None):
        self.behaviour = behaviour
        self.stats = Stats()
        self.ledger = Ledger()
        self.log = log
        self.stopping = threading.Event()
        self.ec2 = EC2Context(behaviour, self.stats, self.ledger,
                              self.stopping)
        self.forwarder = MotoForwarder(moto_host, moto_port)
        def reset() -> None:
            reset_moto()
            with self.ec2.tokens_lock:   # the instances they named are gone
                self.ec2.tokens.clear()
            self.ec2.imports.clear()     # so are their snapshots and AMIs

        self.control = ControlPlane(behaviour, self.stats, self.ledger,
                                    f"http://{moto_host}:{moto_port}",
                                    reset, self.ec2.imports, moto_cpu)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeAWSProxy":
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        # A short poll interval only makes stop() quick; the loop itself
        # wakes on every new connection anyway.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        args=(0.05,), name="fakeaws-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def route(self, method: str, path: str, headers: list[tuple[str, str]],
              body: bytes) -> Reply:
        if path.startswith("/_fake/"):
            return self.control.handle(method, path, body)
        lower = {k.lower(): v for k, v in headers}
        region, service = credential_scope(lower.get("authorization"))
        target = lower.get("x-amz-target", "")
        if self.behaviour.refuse_credentials and (
                service in ("ec2", "servicequotas")
                or target.startswith(TARGET_PREFIX)):
            return self._refused(target.startswith(TARGET_PREFIX))
        if target.startswith(TARGET_PREFIX):
            return self._service_quotas(target[len(TARGET_PREFIX):], body,
                                        region)
        operation = method
        if method == "POST" and lower.get("content-type", "").startswith(
                _FORM):
            call = EC2Call(body, region)
            if service == "ec2" or (service is None
                                    and "Version" in call.params):
                return handle_ec2_call(
                    call, self.ec2,
                    lambda b: self.forwarder.forward(method, path, headers,
                                                     b))
            operation = call.first("Action") or method
        key = f"{service or 'unsigned'}:{operation}"
        self.stats.begin(key)
        try:
            return self.forwarder.forward(method, path, headers, body)
        finally:
            self.stats.end(key)

    def _refused(self, json_protocol: bool) -> Reply:
        """What AWS answers a call signed with a key it does not accept."""
        self.stats.refuse()
        if json_protocol:
            doc = {"__type": "UnrecognizedClientException",
                   "message": "The security token included in the request "
                              "is invalid."}
            return Reply(400, json.dumps(doc).encode(),
                         [("Content-Type", "application/x-amz-json-1.1")])
        status, message = ERROR_CODES["AuthFailure"]
        return Reply(status, ec2_error_body("AuthFailure", message),
                     [("Content-Type", "text/xml;charset=UTF-8")])

    def _service_quotas(self, operation: str, body: bytes,
                        region: str) -> Reply:
        key = f"servicequotas:{operation}"
        self.stats.begin(key)
        try:
            status, doc = answer_quota_call(self.behaviour.quotas, operation,
                                            body, region)
            if status >= 400:
                self.stats.error(key, status)
            return Reply(status, json.dumps(doc).encode(),
                         [("Content-Type", "application/x-amz-json-1.1")])
        finally:
            self.stats.end(key)
