"""The data-model facade the launcher, CLI and web app use.

``ZooKeeper`` combines the record stores (nodes, requests, components,
images) over one :class:`~nodepool.zk.client.ZooKeeperClient` and, when
enabled, watch-driven caches of the busy subtrees::

    client = ZooKeeperClient.from_config(config)
    client.connect()
    zk = ZooKeeper(client)
    zk.start_cache()
    for request in zk.iter_requests():        # cached, in priority order
        ...
    zk.stop_cache(); client.disconnect()

Failure story: reads and writes fail with ``ZooKeeperError`` subclasses (see
``errors.py``).  When the session is LOST all our ephemeral znodes vanish:
locks are gone (holders must notice via ``client.suspended`` and stop
acting), and once a new session is CONNECTED the facade re-registers its
components and calls the ``add_session_listener`` callbacks (the cleanup
worker's, so that it looks for lost requests at once).

Threads: one facade is shared by every thread of its process; the
locking of its parts is in ``store.py``, ``component_store.py`` and the
other stores, and that of the caches in ``cache.py``.  The facade itself
listens to the connection (``_on_connection_state``), which runs on
kazoo's connection thread: it only flips ``_session_lost`` (touched by
no other thread) and, when a new session replaced a lost one, starts a
short-lived ``nodepool-zk-session-restore`` thread, so the connection
thread never waits for the round trips of the restore.  That thread
rewrites the components (under ``_registered_lock``) and then calls the
``add_session_listener`` callbacks, one after the other; a callback may
make ZooKeeper calls.  Listeners added with ``add_listener`` are called
on the caches' threads (``cache.py``) and must only wake a loop.
``add_session_listener`` appends without a lock; the restore thread
copies the list before calling it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from kazoo.protocol.states import KazooState

from .cache import TreeCaches
from .client import ZooKeeperClient
from .component_store import ComponentStore
from .image_store import ImageStore
from .node_store import NodeStore
from .offering_store import OfferingStore
from .paths import (COMPONENTS, LAUNCHER_USAGE, NODES, OFFERINGS,
                    REQUEST_WAITS, REQUESTS)
from .request_store import RequestStore
from .usage_store import UsageStore
from .waits import WaitStore

__all__ = ["ZooKeeper"]

# Request lock directories are not cached: only the hourly-ish cleanup reads
# them, and caching them costs several round trips per lock cycle.
CACHED_ROOTS = (NODES, REQUESTS, COMPONENTS, OFFERINGS, REQUEST_WAITS,
                LAUNCHER_USAGE)
# What the launcher reads, per root: (data depth, children depth).  Nodes:
# the node's data, and the names of its lock contenders (is it locked?);
# requests, offerings and wait records: their data only (no children).
CACHE_DEPTHS = {NODES: (1, 2), REQUESTS: (1, 0), OFFERINGS: (1, 0),
                REQUEST_WAITS: (1, 0), LAUNCHER_USAGE: (1, 0)}
# Read a changed node or request when asked for, not when notified: the
# launchers that do not serve a request never read it, nor its nodes
# between their passes (several writes cost one read).  The launchers'
# usage records: a peer's is read when quota or the stats leader asks.
LAZY_ROOTS = (NODES, REQUESTS, LAUNCHER_USAGE)


class ZooKeeper(NodeStore, RequestStore, ComponentStore, ImageStore,
                OfferingStore, WaitStore, UsageStore):
    """Reads and writes of the wire contract (zookeeper.md)."""

    def __init__(self, client: ZooKeeperClient, enable_cache: bool = True,
                 logger: logging.Logger | None = None,
                 persistent_watches: bool = True) -> None:
        self.client = client
        self.kazoo = client.kazoo
        self.log = logger or logging.getLogger("nodepool.zk")
        self.enable_cache = enable_cache
        self.caches = TreeCaches(self.kazoo, CACHED_ROOTS, CACHE_DEPTHS,
                                 persistent=persistent_watches,
                                 lazy=LAZY_ROOTS)
        self._init_store()
        self._init_components()
        self._init_nodes()
        self._session_listeners: list[Callable[[], None]] = []
        self._session_lost = False
        client.add_connection_listener(self._on_connection_state)

    # -- caches -----------------------------------------------------------
    def start_cache(self, timeout: float | None = 10.0) -> None:
        """Start the watch caches (no-op when caching is disabled) and wait
        up to ``timeout`` for their first full read."""
        if self.enable_cache and not self.caches.running:
            self.caches.start(timeout)

    def stop_cache(self) -> None:
        self.caches.stop()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` after any cached change (nodes, requests, locks,
        components); called on a cache thread, so it should only wake a
        loop."""
        self.caches.add_listener(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        self.caches.remove_listener(callback)

    # -- session ----------------------------------------------------------
    @property
    def suspended(self) -> bool:
        return self.client.suspended

    def add_session_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` after a new session replaced a LOST one (and our
        components were re-registered)."""
        self._session_listeners.append(callback)

    def _on_connection_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._session_lost = True
        elif state == KazooState.CONNECTED and self._session_lost:
            self._session_lost = False
            threading.Thread(target=self._restore_session,
                             name="nodepool-zk-session-restore",
                             daemon=True).start()

    def _restore_session(self) -> None:
        self.log.warning("New ZooKeeper session: restoring ephemeral znodes")
        # Set-or-create, not create: a worker's own update may already have
        # re-created its component in this session, and a second create
        # would publish a duplicate (Zuul would count the pool twice).
        with self._registered_lock:
            components = list(self._registered.values())
        for component in components:
            try:
                with self._registered_lock:
                    if id(component) not in self._registered:
                        continue    # unregistered meanwhile
                    self.update_component(component)
                self.log.info("Restored %s component at %s",
                              component.kind, component.path)
            except Exception:
                self.log.exception("Could not restore %s component",
                                   component.kind)
        for callback in list(self._session_listeners):
            try:
                callback()
            except Exception:
                self.log.exception("Error in session listener")

    # -- operator actions -------------------------------------------------
    def erase_provider(self, provider: str) -> tuple[int, int]:
        """``nodepool erase``: remove the provider's upload records and node
        znodes without locking; returns (upload dirs, nodes) removed."""
        return (self.erase_provider_uploads(provider),
                self.erase_provider_nodes(provider))


