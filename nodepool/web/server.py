"""WebApp: the launcher's read-only HTTP server (cli.md §3, issue 7).

    app = WebApp(launcher)             # webapp.listen_address:webapp.port
    app.start()                        # or WebApp(launcher, port=0) in tests
    ...                                # app.port is the bound port
    app.stop()

Paths: ``/ready``, ``/node-list[?node_id=]``, ``/request-list``,
``/label-list``, ``/image-list`` (JSON or text table, cached 1 s per
path, query and format), ``/metrics`` (Prometheus), ``/status.json`` and
the status page ``/`` with its assets under ``/static/``.  Anything else
is 404; methods other than GET are 405.  Nothing here changes state.

Threads: ``WebApp`` runs the server loop; each request is answered on its
own short-lived daemon thread (``ThreadingHTTPServer``).  They only read
the launcher (see ``state.py``) and share the response cache (its own
lock) and the launch recorder (its own lock).

Failure story: an error while building a response is logged and answered
500 with a generic body (never the exception text: it could carry a cloud
message or a path); the server keeps serving.  Before the launcher has a
ZooKeeper connection the data paths answer 503, like ``/ready``.  A port
already in use fails ``start()`` with ``OSError``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from nodepool.web import metrics
from nodepool.web.cache import CachedResponse, ResponseCache
from nodepool.web.launches import LaunchRecorder
from nodepool.web.negotiate import wants_json
from nodepool.web.state import snapshot
from nodepool.web.status import status_document
from nodepool.web.views import TABLE_VIEWS, render_table

__all__ = ["WebApp"]

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
}
# The page loads nothing but its own assets and /status.json.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
TEXT = "text/plain; charset=UTF-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: "WebApp"):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)


class WebApp:
    """See the module docstring."""

    def __init__(self, launcher, port: int | None = None,
                 listen_address: str | None = None, cache_ttl: float = 1.0):
        config = getattr(launcher.config, "webapp", None)
        self.launcher = launcher
        self.listen_address = listen_address or (
            config.listen_address if config else "0.0.0.0")
        self.requested_port = port if port is not None else (
            config.port if config else 8005)
        self.log = logging.getLogger("nodepool.web")
        self.cache = ResponseCache(cache_ttl)
        self.recorder = LaunchRecorder(self._ours)
        self.registry = metrics.make_registry(launcher, self.recorder)
        self.assets = {path: (_asset(name), ctype)
                       for path, (name, ctype) in STATIC.items()}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _ours(self, event) -> bool:
        return any(m is event.manager
                   for m in self.launcher.provider_managers().values())

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("web app not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self.listen_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("web app already started")
        self._server = _Server((self.listen_address, self.requested_port),
                               self)
        self.recorder.start()
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="WebApp", daemon=True)
        self._thread.start()
        self.log.info("Web app listening on %s:%s", self.listen_address,
                      self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self.recorder.stop()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- response builders (called by the handler) -------------------------
    def table(self, path: str, query: dict, as_json: bool
              ) -> tuple[bytes, str]:
        table = TABLE_VIEWS[path](self.launcher, query)
        return render_table(table, as_json, query)

    def status(self) -> tuple[bytes, str]:
        doc = status_document(snapshot(self.launcher), self.recorder)
        return json.dumps(doc).encode("utf-8"), "application/json"

    def metrics(self) -> bytes:
        return metrics.render(self.registry)


def _asset(name: str) -> bytes:
    return resources.files("nodepool.web").joinpath(
        "static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nodepool"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:
        self.server.app.log.debug("%s %s", self.address_string(),
                                  format % args)

    def do_GET(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        try:
            if path == "/ready":
                self._ready(app)
            elif path in TABLE_VIEWS or path == "/status.json":
                self._cached(app, path, url.query, query)
            elif path == "/metrics":
                self._send(200, app.metrics(), metrics.CONTENT_TYPE,
                           {"Cache-Control": "no-cache"})
            elif path in app.assets:
                body, ctype = app.assets[path]
                self._send(200, body, ctype, {
                    "Cache-Control": "no-cache",
                    "Content-Security-Policy": PAGE_POLICY})
            else:
                self._send(404, b"Not found\n", TEXT)
        except Exception:
            app.log.exception("Error answering %s", path)
            self._send(500, b"Internal error\n", TEXT)

    def _ready(self, app: WebApp) -> None:
        headers = {"Cache-Control": "no-cache"}
        if app.launcher.ready.is_set():
            self._send(200, b"OK", TEXT, headers)
        else:
            self._send(503, b"Not ready", TEXT, headers)

    def _cached(self, app: WebApp, path: str, raw_query: str,
                query: dict) -> None:
        if app.launcher.zk is None:
            self._send(503, b"Not ready\n", TEXT)
            return
        if path == "/status.json":
            as_json = True
            entry = app.cache.get((path, "", "json"), app.status)
        else:
            as_json = wants_json(self.headers.get("Accept"))
            entry = app.cache.get(
                (path, raw_query, "json" if as_json else "text"),
                lambda: app.table(path, query, as_json))
        headers = _cache_headers(entry, app.cache.ttl)
        if _not_modified(self.headers.get("If-Modified-Since"), entry):
            self._send(304, b"", None, headers)
        else:
            self._send(200, entry.body, entry.content_type, headers)

    def _send(self, status: int, body: bytes, content_type: str | None,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("X-Content-Type-Options", "nosniff")
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(body)

    def _not_allowed(self) -> None:
        body = b"" if self.command == "HEAD" else b"Method not allowed\n"
        self._send(405, body, TEXT, {"Allow": "GET"})

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = \
        _not_allowed


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
