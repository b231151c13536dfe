"""The web app's WSGI application: paths, methods and HTTP details.

``Routes(app)`` is the WSGI callable the server runs; it answers from the
response builders of :class:`nodepool.web.server.WebApp` (``table``,
``status``, ``metrics``, ``assets``) and its cache.  It takes the app as a
``Site``, the protocol of just those members: the server module builds the
routes, so importing it here for its type made the two modules import each
other, and the routes could have reached anything of the app.  Paths are listed in
``server.py``; only GET is served (405 otherwise), unknown paths are 404,
a ``?fields=`` key the table does not have is 400 naming it.

Threads: called on the server's worker threads, concurrently; it keeps no
state of its own.

Failure story: an error while building a response is logged and answered
500 with a generic body (never the exception text: it could carry a cloud
message or a path).  Before the launcher has a ZooKeeper connection the
data paths answer 503, like ``/ready``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from typing import Callable, Iterable, Mapping, Protocol
from urllib.parse import parse_qs

from nodepool.escaping import escape_controls
from nodepool.web import metrics
from nodepool.web.cache import CachedResponse, ResponseCache
from nodepool.web.negotiate import wants_json
from nodepool.web.views import TABLE_VIEWS, UnknownField

__all__ = ["Routes", "PAGE_POLICY", "Site"]

# The page loads nothing but its own assets and /status.json.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
TEXT = "text/plain; charset=UTF-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = TEXT
    headers: dict[str, str] = field(default_factory=dict)


class Launcher(Protocol):
    """What the routes read of the launcher: whether it is ready, and
    whether it has a ZooKeeper connection (None before it has one)."""

    ready: threading.Event
    zk: object | None


class Site(Protocol):
    """What the routes answer from (``WebApp`` is one): the response
    builders, the static assets by path, the response cache and the log."""

    log: logging.Logger
    launcher: Launcher
    cache: ResponseCache
    assets: Mapping[str, tuple[bytes, str]]

    def table(self, path: str, query: dict, as_json: bool
              ) -> tuple[bytes, str]: ...

    def status(self) -> tuple[bytes, str]: ...

    def metrics(self) -> bytes: ...


class Routes:
    """The WSGI application of one :class:`Site`."""

    def __init__(self, app: Site):
        self.app = app

    def __call__(self, environ: dict,
                 start_response: Callable) -> Iterable[bytes]:
        response = self.respond(environ)
        status = HTTPStatus(response.status)
        headers = []
        if response.content_type:
            headers.append(("Content-Type", response.content_type))
        headers.extend(response.headers.items())
        headers.append(("X-Content-Type-Options", "nosniff"))
        body = response.body
        if status is HTTPStatus.NOT_MODIFIED:
            body = b""
        else:
            headers.append(("Content-Length", str(len(body))))
        start_response(f"{status.value} {status.phrase}", headers)
        return [body] if body else []

    def respond(self, environ: dict) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if method != "GET":
            body = b"" if method == "HEAD" else b"Method not allowed\n"
            return Response(405, body, headers={"Allow": "GET"})
        path = environ.get("PATH_INFO", "")
        try:
            return self._get(path, environ)
        except Exception:
            self.app.log.exception("Error answering %s",
                                   escape_controls(path))
            return Response(500, b"Internal error\n")

    def _get(self, path: str, environ: dict) -> Response:
        app = self.app
        if path == "/ready":
            return self._ready()
        if path in TABLE_VIEWS or path == "/status.json":
            return self._cached(path, environ)
        if path == "/metrics":
            return Response(200, app.metrics(), metrics.CONTENT_TYPE,
                            {"Cache-Control": "no-cache"})
        if path in app.assets:
            body, ctype = app.assets[path]
            return Response(200, body, ctype, {
                "Cache-Control": "no-cache",
                "Content-Security-Policy": PAGE_POLICY})
        return Response(404, b"Not found\n")

    def _ready(self) -> Response:
        headers = {"Cache-Control": "no-cache"}
        if self.app.launcher.ready.is_set():
            return Response(200, b"OK", headers=headers)
        return Response(503, b"Not ready", headers=headers)

    def _cached(self, path: str, environ: dict) -> Response:
        app = self.app
        if app.launcher.zk is None:
            return Response(503, b"Not ready\n")
        if path == "/status.json":
            entry = app.cache.get((path, "", "json"), app.status)
        else:
            raw_query = environ.get("QUERY_STRING", "")
            query = parse_qs(raw_query, keep_blank_values=True)
            as_json = wants_json(environ.get("HTTP_ACCEPT"))
            try:
                entry = app.cache.get(
                    (path, raw_query, "json" if as_json else "text"),
                    lambda: app.table(path, query, as_json))
            except UnknownField as exc:
                return Response(400, f"{exc}\n".encode("utf-8"))
        headers = _cache_headers(entry, app.cache.ttl)
        if _not_modified(environ.get("HTTP_IF_MODIFIED_SINCE"), entry):
            return Response(304, b"", None, headers)
        return Response(200, entry.body, entry.content_type, headers)


def _cache_headers(entry: CachedResponse, ttl: float) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": "*",
            "Cache-Control": f"public, max-age={int(ttl)}",
            "Last-Modified": formatdate(entry.generated, usegmt=True),
            "Expires": formatdate(entry.generated + ttl, usegmt=True)}


def _not_modified(since: str | None, entry: CachedResponse) -> bool:
    if not since:
        return False
    try:
        stamp = parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(entry.generated) <= stamp
