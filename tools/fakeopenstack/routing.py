"""HTTP plumbing of the local OpenStack: requests, responses, routes, stats.

Every service module registers handlers on one :class:`Router` under a path
template such as ``/compute/v2.1/servers/{server_id}``.  The template (with
its method) is also the key under which calls are counted, so a benchmark
can assert "N ``POST /compute/v2.1/servers``" without caring about ids.

Failure story: a handler signals an API error by raising :class:`ApiError`
with the exact status and body the real service would send; any other
exception becomes a 500 with the traceback text, so a bug in the fake shows
up as an SDK ``HttpException`` naming the fake, never as a hung client.  A
request for a path no handler knows is answered 404 and remembered in
``stats()["unhandled"]``: that list is what to read when the SDK starts
calling an endpoint this fake does not implement yet.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["ApiError", "Request", "Response", "Router", "CallStats",
           "make_handler_class"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]          # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(400, {"badRequest": {
                "code": 400, "message": "Malformed request body"}})

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: Any = None                 # dict/list -> JSON; str/bytes as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class ApiError(Exception):
    """An error response, raised from a handler."""

    def __init__(self, status: int, body: Any,
                 content_type: str = "application/json"):
        super().__init__(f"{status}: {body}")
        self.response = Response(status, body, content_type=content_type)


Handler = Callable[[Request], Response]


class CallStats:
    """Call counts per ``METHOD template`` and peak concurrency.

    Shared by all request threads, hence the lock.  ``max_in_flight`` shows
    whether concurrent creates really overlapped (a benchmark wants 4, not 1).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls: Counter[str] = Counter()
            self._in_flight: Counter[str] = Counter()
            self._max_in_flight: Counter[str] = Counter()
            self._unhandled: Counter[str] = Counter()

    def enter(self, key: str) -> None:
        with self._lock:
            self._calls[key] += 1
            self._in_flight[key] += 1
            if self._in_flight[key] > self._max_in_flight[key]:
                self._max_in_flight[key] = self._in_flight[key]

    def leave(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1

    def unhandled(self, key: str) -> None:
        with self._lock:
            self._unhandled[key] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"calls": dict(self._calls),
                    "max_in_flight": dict(self._max_in_flight),
                    "unhandled": dict(self._unhandled)}


class Router:
    """Maps (method, path) to a handler through path templates."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        parts = re.split(r"\{(\w+)\}", template)
        # Even items are literal text, odd items parameter names.
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)"
                          for i, p in enumerate(parts))
        # Clients add or drop a trailing slash on version documents.
        self._routes.append((method, template,
                             re.compile(f"^{pattern}/?$"), handler))

    def match(self, method: str, path: str
              ) -> tuple[str, Handler, dict[str, str]] | None:
        for route_method, template, regex, handler in self._routes:
            if route_method != method:
                continue
            m = regex.match(path)
            if m:
                return template, handler, m.groupdict()
        return None


def _not_found(path: str) -> Response:
    return Response(404, {"error": {"code": 404, "title": "Not Found",
                                    "message": f"No fake handler for {path}"}})


def make_handler_class(router: Router, stats: CallStats,
                       authorize: Callable[[Request, str], None]
                       ) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to one fake cloud.

    ``authorize(request, template)`` raises :class:`ApiError` (401) when the
    token is missing or unknown.
    """

    class FakeOpenStackHandler(BaseHTTPRequestHandler):
        # HTTP/1.1 keep-alive: keystoneauth's requests session reuses
        # connections, and every response carries a Content-Length.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY
        # Nagle plus delayed ACK adds ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True
        server_version = "FakeOpenStack/1.0"
        # An idle keep-alive connection ends its thread after this long.
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the SDK logs requests; a second log is noise

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            path = re.sub(r"/{2,}", "/", url.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command, path=path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"")
            found = router.match(self.command, path)
            if found is None:
                stats.unhandled(f"{self.command} {path}")
                self._send(_not_found(path))
                return
            template, handler, params = found
            request.params = params
            key = f"{self.command} {template}"
            stats.enter(key)
            try:
                authorize(request, template)
                response = handler(request)
            except ApiError as e:
                response = e.response
            except Exception:
                response = Response(500, {"computeFault": {
                    "code": 500, "message": "fake OpenStack bug: "
                                            + traceback.format_exc()}})
            finally:
                stats.leave(key)
            self._send(response)

        def _send(self, response: Response) -> None:
            data = response.encode()
            self.send_response(response.status)
            if data or response.status not in (204, 304):
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    return FakeOpenStackHandler
