"""WebApp: the launcher's read-only HTTP server (cli.md §3, issue 7).

    app = WebApp(launcher)             # webapp.listen_address:webapp.port
    app.start()                        # or WebApp(launcher, port=0) in tests
    ...                                # app.port is the bound port
    app.stop()

Paths: ``/ready``, ``/node-list[?node_id=]``, ``/request-list``,
``/label-list``, ``/image-list`` (JSON or text table, cached 1 s per
path, query and format), ``/metrics`` (Prometheus), ``/status.json`` and
the status page ``/`` with its assets under ``/static/``.  Anything else
is 404; methods other than GET are 405; an unknown ``?fields=`` key is
400.  Nothing here changes state.  ``routes.py`` answers the requests,
``wsgiserver.py`` serves them (cheroot) within :class:`ServerLimits`: a
fixed thread pool, a read timeout, a listen backlog and request size caps.

Threads: ``start()`` starts the ``WebApp`` thread, which runs the server's
connection loop, and the server's worker threads; ``stop()`` closes every
connection and joins them all.  Workers only read the launcher (see
``state.py``) and share the response cache (its own lock) and the launch
recorder (its own lock).

Failure story: a port already in use fails ``start()`` with ``OSError``
(nothing is left running).  Request errors are answered by ``routes.py``;
the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
from importlib import resources

from nodepool.web import metrics
from nodepool.web.cache import ResponseCache
from nodepool.web.launches import LaunchRecorder
from nodepool.web.queues import QueueRecorder
from nodepool.web.routes import Routes
from nodepool.web.state import snapshot
from nodepool.web.status import status_document
from nodepool.web.views import TABLE_VIEWS, render_table
from nodepool.web.wsgiserver import ServerLimits, WSGIServer

__all__ = ["WebApp", "ServerLimits"]

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
}


class WebApp:
    """See the module docstring."""

    def __init__(self, launcher, port: int | None = None,
                 listen_address: str | None = None, cache_ttl: float = 1.0,
                 limits: ServerLimits | None = None):
        config = getattr(launcher.config, "webapp", None)
        self.launcher = launcher
        self.listen_address = listen_address or (
            config.listen_address if config else "0.0.0.0")
        self.requested_port = port if port is not None else (
            config.port if config else 8005)
        self.limits = limits or ServerLimits()
        self.log = logging.getLogger("nodepool.web")
        self.cache = ResponseCache(cache_ttl)
        self.recorder = LaunchRecorder(self._ours)
        self.queues = QueueRecorder(lambda e: e.source is self.launcher)
        self.registry = metrics.make_registry(launcher, self.recorder,
                                              self.queues)
        self.assets = {path: (_asset(name), ctype)
                       for path, (name, ctype) in STATIC.items()}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _ours(self, event) -> bool:
        return any(m is event.manager
                   for m in self.launcher.provider_managers().values())

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("web app not started")
        return self._server.bind_addr[1]

    @property
    def busy(self) -> int:
        """Workers reading or answering a request right now."""
        if self._server is None:
            return 0
        return self.limits.threads - self._server.requests.idle

    @property
    def queued(self) -> int:
        """Connections with a request waiting for a free worker."""
        if self._server is None:
            return 0
        return self._server.requests.qsize

    @property
    def url(self) -> str:
        host = self.listen_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("web app already started")
        server = WSGIServer((self.listen_address, self.requested_port),
                            Routes(self), self.limits, self.log)
        server.prepare()            # binds; OSError when the port is taken
        self._server = server
        self.recorder.start()
        self.queues.start()
        self._thread = threading.Thread(target=server.serve, name="WebApp",
                                        daemon=True)
        self._thread.start()
        self.log.info("Web app listening on %s:%s", self.listen_address,
                      self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self.recorder.stop()
        self.queues.stop()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- response builders (called by the routes) ----------------------------
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
