"""The ZooKeeper connection: hosts string, TLS, connect/disconnect, session
state.

Failure story:

* TLS files that cannot be read raise ``ZooKeeperError`` naming the file
  when the client is built, before any connection attempt.
* ``connect()`` raises ``ZooKeeperError`` ("... unreachable ...") when no
  server answers within the timeout; the half-started kazoo client is stopped
  so nothing keeps reconnecting in the background.
* Afterwards kazoo reconnects by itself, trying every server at least
  once a second however long the outage (``RECONNECT_MAX_DELAY``).  While
  the session is SUSPENDED (connection dropped, session may still live) or
  LOST (session expired: every ephemeral znode and lock of ours is gone)
  ``suspended`` is true and callers must not change requests or nodes.

Threads: kazoo runs the connection on threads of its own: the connection
thread (sends, receives, reconnects, and calls the state listeners) and
the handler's two worker threads (watch callbacks; completions of async
results).  ``connect``/``disconnect`` run on the owner's thread and wait
there.  ``_on_state`` is called on kazoo's connection thread on every
change; it logs and calls the connection listeners
(``add_connection_listener``) there with the ``KazooState``.  While they
run, the connection thread neither reads nor sends: a listener must
return quickly and never wait for ZooKeeper (the facade hands slow work
to a thread of its own).  The listener list is guarded by
``_listeners_lock`` and copied before the calls, which run without it.
``connected``, ``suspended`` and ``session_id`` read kazoo's state without
a lock, from any thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import select

from kazoo.client import KazooClient
from kazoo.handlers.threading import (KazooTimeoutError,
                                      SequentialThreadingHandler)
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from .errors import ZooKeeperError

__all__ = ["ZooKeeperClient", "build_hosts", "DEFAULT_PORT"]

DEFAULT_PORT = 2281
# kazoo's default reconnection back-off doubles up to an hour: after a long
# outage a restarted server would go unnoticed for minutes (and the session
# could expire meanwhile).  Connection attempts are cheap, so retry forever
# at most this many seconds apart.
RECONNECT_MAX_DELAY = 1.0


class PollHandler(SequentialThreadingHandler):
    """kazoo's threading handler with a cheaper ``select``.

    kazoo's connection thread waits in ``handler.select()`` once per
    request and reply; the stock handler builds, registers and closes a
    new epoll selector every time (three extra system calls, and a
    measurable share of the launcher's CPU under load).  ``poll`` needs no
    set-up and, like epoll, has no file-descriptor ceiling.
    """

    def select(self, rlist, wlist, xlist, timeout=None):
        poller = select.poll()
        fds: dict[int, list] = {}
        for objs, mask in ((rlist, select.POLLIN), (wlist, select.POLLOUT)):
            for obj in objs:
                fd = obj if isinstance(obj, int) else obj.fileno()
                entry = fds.setdefault(fd, [0, []])
                entry[0] |= mask
                entry[1].append((obj, mask))
        for fd, (mask, _) in fds.items():
            poller.register(fd, mask)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        readable, writable = [], []
        for fd, events in poller.poll(ms):
            for obj, mask in fds[fd][1]:
                if mask == select.POLLIN and events & (
                        select.POLLIN | select.POLLHUP | select.POLLERR):
                    readable.append(obj)
                elif mask == select.POLLOUT and events & (
                        select.POLLOUT | select.POLLHUP | select.POLLERR):
                    writable.append(obj)
        return readable, writable, []


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Config objects may be attribute objects or plain dicts."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def build_hosts(servers: list) -> str:
    """kazoo connection string from ``zookeeper-servers`` entries.

    IPv6 literals are bracketed.  kazoo accepts one chroot for the whole
    string (after the last server), so every server must name the same one.
    """
    if not servers:
        raise ZooKeeperError("no zookeeper-servers configured")
    parts, chroots = [], set()
    for server in servers:
        host = str(_field(server, "host"))
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = _field(server, "port") or DEFAULT_PORT
        parts.append(f"{host}:{port}")
        chroot = _field(server, "chroot") or ""
        if chroot and not chroot.startswith("/"):
            chroot = "/" + chroot
        chroots.add(chroot.rstrip("/"))
    if len(chroots) > 1:
        raise ZooKeeperError("all zookeeper-servers must use the same chroot,"
                             f" got {sorted(chroots)}")
    return ",".join(parts) + chroots.pop()


def _check_readable(kind: str, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ZooKeeperError(
            f"cannot read ZooKeeper TLS {kind} file {path}: "
            f"{exc.strerror or exc}") from exc


class ZooKeeperClient:
    """A kazoo client configured from our settings.

    ``tls`` is ``(cert, key, ca)`` PEM paths for mutual TLS, or None for
    plaintext (logged as a warning on connect)::

        client = ZooKeeperClient("127.0.0.1:2281/nodepool", tls=(c, k, ca))
        client.connect()
        ...
        client.disconnect()
    """

    def __init__(self, hosts: str, tls: tuple[str, str, str] | None = None,
                 timeout: float = 10.0,
                 logger: logging.Logger | None = None) -> None:
        self.hosts = hosts
        self.tls = tls
        self.timeout = float(timeout)
        self.log = logger or logging.getLogger("nodepool.zk.client")
        self._listeners: list[Callable[[str], None]] = []
        self._listeners_lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            cert, key, ca = tls
            for kind, path in (("cert", cert), ("key", key), ("ca", ca)):
                _check_readable(kind, path)
            kwargs = dict(use_ssl=True, verify_certs=True, certfile=cert,
                          keyfile=key, ca=ca)
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2,
                           max_jitter=0.2, max_delay=RECONNECT_MAX_DELAY)
        self.kazoo = KazooClient(hosts=hosts, timeout=self.timeout,
                                 connection_retry=retry,
                                 handler=PollHandler(), **kwargs)
        self.kazoo.add_listener(self._on_state)

    @classmethod
    def from_config(cls, config: Any,
                    logger: logging.Logger | None = None
                    ) -> "ZooKeeperClient":
        """From a loaded config: ``zookeeper_servers``, ``zookeeper_tls``
        (cert, key, ca; or None), ``zookeeper_timeout``."""
        hosts = build_hosts(list(_field(config, "zookeeper_servers") or []))
        tls_conf = _field(config, "zookeeper_tls")
        tls = None
        if tls_conf:
            tls = (_field(tls_conf, "cert"), _field(tls_conf, "key"),
                   _field(tls_conf, "ca"))
            if not all(tls):
                raise ZooKeeperError(
                    "zookeeper-tls needs all of cert, key and ca")
        timeout = _field(config, "zookeeper_timeout") or 10.0
        return cls(hosts, tls=tls, timeout=timeout, logger=logger)

    # -- connection -------------------------------------------------------
    def connect(self, timeout: float | None = None) -> None:
        """Connect, waiting at most ``timeout`` (default: session timeout)."""
        if self.tls is None:
            self.log.warning("Connecting to ZooKeeper at %s unencrypted "
                             "(no zookeeper-tls configured)", self.hosts)
        wait = self.timeout if timeout is None else timeout
        try:
            self.kazoo.start(timeout=wait)
        except KazooTimeoutError as exc:
            raise ZooKeeperError(
                f"ZooKeeper at {self.hosts} unreachable: no connection "
                f"within {wait:g} s") from exc
        self.log.debug("Connected to ZooKeeper at %s", self.hosts)

    def disconnect(self) -> None:
        try:
            self.kazoo.stop()
        finally:
            self.kazoo.close()

    @property
    def connected(self) -> bool:
        return bool(self.kazoo.connected)

    @property
    def suspended(self) -> bool:
        """True while SUSPENDED or LOST: do not change shared state."""
        return self.kazoo.state != KazooState.CONNECTED

    @property
    def session_id(self) -> int | None:
        client_id = self.kazoo.client_id
        return client_id[0] if client_id else None

    # -- listeners --------------------------------------------------------
    def add_connection_listener(self, callback: Callable[[str], None]) -> None:
        """``callback(state)`` on every KazooState change; must not block."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_connection_listener(self, callback: Callable) -> None:
        with self._listeners_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _on_state(self, state: str) -> bool:
        log = self.log.warning if state != KazooState.CONNECTED else \
            self.log.info
        log("ZooKeeper connection state: %s", state)
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(state)
            except Exception:
                self.log.exception("Error in ZooKeeper connection listener")
        return False  # stay registered
