"""WSGIServer: cheroot's WSGI server with the web app's limits.

    server = WSGIServer(("127.0.0.1", 0), wsgi_app, ServerLimits())
    server.prepare()                   # binds (OSError when the port is
    threading.Thread(target=server.serve).start()   # taken), starts workers
    ...
    server.stop()                      # closes every connection, joins

What cheroot gives: a fixed pool of worker threads, a listen backlog, a
read timeout on every connection (a request that stalls half-way is
answered 408 and closed), a cap on the request line and headers (414/413)
and on a request body (413), and a bounded queue of connections waiting
for a worker (503 beyond it).  What this module adds is one rule: a new
connection waits in cheroot's selector until it sends its first byte, like
an idle keep-alive connection does, instead of taking a worker at once.
Without it every silent connection holds a worker until the read timeout,
and a few hundred of them starve real requests for minutes.  A connection
that stays silent for ``read_timeout`` is closed by the selector's expiry
pass.

What it cannot prevent: a client that sends a partial request ties up one
worker for at most ``read_timeout``; ``threads`` such clients at once
delay other requests by as much.

Threads: ``serve()`` runs the selector loop (accepts, watches idle
connections, expires them) on the caller's thread; ``threads`` worker
threads (named ``CP Server Thread-N`` by cheroot) answer requests; one
more cheroot thread answers 503 when the worker queue is full.  All of
them end in ``stop()``.

Failure story: errors cheroot reports about a client (resets, TLS noise,
timeouts) are logged at DEBUG, its own errors at ERROR; neither stops the
server.  The WSGI app answers its own errors (see ``routes.py``).  A
``LISTEN_PID`` that names another process (inherited from a parent started
by systemd socket activation) is dropped with a warning: cheroot would
otherwise take whatever file descriptor 3 is for its listening socket.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from cheroot import server as cheroot_server
from cheroot import wsgi

from nodepool.escaping import escape_controls

__all__ = ["ServerLimits", "WSGIServer"]


@dataclass(frozen=True)
class ServerLimits:
    """The server's resource limits; the defaults serve a launcher's
    dashboards and scrapers."""

    threads: int = 10               # workers; each request is ~1 ms of CPU
    backlog: int = 512              # listen(); the kernel caps it (somaxconn)
    read_timeout: float = 10.0      # s a connection may stay silent/stalled
    max_header_bytes: int = 16 * 1024   # request line + headers
    max_body_bytes: int = 1024      # only GET is served: no real bodies
    queued: int = 1024              # readable connections waiting for a worker
    keep_alive: int = 64            # idle keep-alive connections kept open
    shutdown_timeout: float = 5.0   # s stop() waits for busy workers


class _Connection(cheroot_server.HTTPConnection):
    # Set once the selector has seen the connection readable.
    spoke = False


class WSGIServer(wsgi.Server):
    """See the module docstring."""

    ConnectionClass = _Connection

    def __init__(self, address: tuple[str, int], app, limits: ServerLimits,
                 log: logging.Logger | None = None):
        super().__init__(
            address, app, numthreads=limits.threads, max=limits.threads,
            server_name="nodepool", request_queue_size=limits.backlog,
            timeout=limits.read_timeout,
            shutdown_timeout=limits.shutdown_timeout,
            accepted_queue_size=limits.queued,
            # The selector loop never waits for room in the queue (it would
            # stall every other connection): a full queue is 503 at once.
            accepted_queue_timeout=0)
        self.version = "nodepool"
        self.max_request_header_size = limits.max_header_bytes
        self.max_request_body_size = limits.max_body_bytes
        self.keep_alive_conn_limit = limits.keep_alive
        self.log = log or logging.getLogger("nodepool.web")

    def prepare(self) -> None:
        """Bind, listen and start the workers (``OSError`` on failure)."""
        # cheroot takes fd 3 for its socket whenever LISTEN_PID is set;
        # systemd's protocol says only when it names this process.  A
        # value inherited from a parent would hand it some other file.
        inherited = os.environ.get("LISTEN_PID")
        if inherited is not None and inherited != str(os.getpid()):
            self.log.warning("Ignoring LISTEN_PID=%s (not this process)",
                             escape_controls(inherited))
            del os.environ["LISTEN_PID"]
        super().prepare()

    def process_conn(self, conn) -> None:
        """Hand a connection to a worker once it has something to read."""
        if not conn.spoke:
            conn.spoke = True
            # The selector calls process_conn() again when bytes arrive,
            # or closes the connection after read_timeout.
            self.put_conn(conn)
            return
        super().process_conn(conn)

    def error_log(self, msg: str = "", level: int = logging.INFO,
                  traceback: bool = False) -> None:
        if level >= logging.ERROR:
            self.log.error("HTTP server: %s", msg, exc_info=traceback)
        else:
            self.log.debug("HTTP server: %s", msg)
