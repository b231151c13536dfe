"""Watch-driven in-memory copies of the busy subtrees.

One cache per root: a ``PersistentTreeCache`` (``watchcache.py``) for the
roots given depths (on ZooKeeper 3.6+; a ``LeanTreeCache`` otherwise or
when persistent watches are off), kazoo's full ``TreeCache`` for the rest.

Failure story: while the session is SUSPENDED the caches keep serving the
last known data (callers check ``client.suspended`` before acting).  When
the connection comes back the TreeCache re-reads every znode it knows and
fires events for what changed; after a LOST session it re-syncs the same
way.  Cached data may therefore be stale for a moment: anything acted upon
must be re-read under a lock (zookeeper.md §7).

Threads: ``start`` and ``stop`` run once each, on the thread that starts or
stops the ``ZooKeeper`` facade's caches (the launcher's start-up and
shutdown).  The reads (``get``, ``child_data``, ``exists``, ...) are called
from any thread -- pool workers and their I/O threads, the cleanup and
deleted-node workers, the usage book, the stats election, the web app's
workers -- and take no lock of this module.  Who mutates a tree depends on
its kind.  A kazoo ``TreeCache`` or ``LeanTreeCache`` (one-shot watches)
applies read results on its own background thread (kazoo's handler spawns
it) and, in kazoo 2.11, a deletion notified by a watch on kazoo's
watch-callback thread; readers take single znodes without a lock, relying on
each dict operation being atomic under the GIL (``child_data`` copies a
directory's children in one call).  A ``PersistentTreeCache`` applies
notifications and replies on kazoo's connection thread under its own
``_lock`` (``watchcache.py``).  Listeners registered with
:meth:`TreeCaches.add_listener` are called with no arguments after any
change, on the thread that applied it (a one-shot cache's background thread,
kazoo's connection thread, or the one settling an own write: the writer's or
kazoo's completion thread); they must never block nor call ZooKeeper: they
should only wake a loop.  The listener list is copied before each round of
calls, not locked.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

from kazoo.client import KazooClient
from kazoo.recipe.cache import NodeData, TreeCache, TreeEvent

from .leantree import LeanTreeCache
from .watchcache import PersistentTreeCache, PersistentWatchUnsupported

__all__ = ["TreeCaches"]

log = logging.getLogger("nodepool.zk.cache")


class TreeCaches:
    """A set of TreeCaches over ``roots``; lifecycle ``start`` → ``stop``
    (each at most once)."""

    def __init__(self, kazoo: KazooClient, roots: Iterable[str],
                 depths: dict[str, tuple[int, int]] | None = None,
                 persistent: bool = True,
                 lazy: Iterable[str] = ()) -> None:
        """``depths``: per root, (data depth, children depth) to fetch
        with a ``PersistentTreeCache`` (one persistent recursive watch;
        ``LeanTreeCache`` when ``persistent`` is false or the server is
        older than ZooKeeper 3.6); other roots get kazoo's full
        TreeCache.  ``lazy``: roots whose persistent cache reads a
        changed znode when it is asked for, not when notified."""
        self._kazoo = kazoo
        self._roots = tuple(roots)
        self._depths = dict(depths or {})
        self._persistent = persistent
        self._lazy = frozenset(lazy)
        self._trees: dict[str, TreeCache] = {}
        self._initialized: dict[str, threading.Event] = {}
        self._listeners: list[Callable[[], None]] = []
        self._started = False
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def start(self, timeout: float | None = 10.0) -> None:
        """Start watching; wait up to ``timeout`` for the first full read."""
        if self._started:
            raise RuntimeError("caches already started")
        self._started = True
        for root in self._roots:
            ready = threading.Event()
            tree = self._start_tree(root, ready)
            self._trees[root] = tree
            self._initialized[root] = ready
        if timeout is not None:
            for root, ready in self._initialized.items():
                if not ready.wait(timeout):
                    log.warning("Cache of %s not initialised after %s s",
                                root, timeout)

    def _start_tree(self, root: str, ready: threading.Event):
        if root not in self._depths:
            tree = TreeCache(self._kazoo, root)
        elif self._persistent:
            tree = PersistentTreeCache(self._kazoo, root,
                                       *self._depths[root],
                                       lazy=root in self._lazy)
            tree.listen(self._make_listener(ready))
            tree.listen_fault(self._on_fault)
            try:
                tree.start()
                return tree
            except PersistentWatchUnsupported as exc:
                log.warning("%s; caching %s with one-shot watches", exc,
                            root)
                self._persistent = False
            tree = LeanTreeCache(self._kazoo, root, *self._depths[root])
        else:
            tree = LeanTreeCache(self._kazoo, root, *self._depths[root])
        tree.listen(self._make_listener(ready))
        tree.listen_fault(self._on_fault)
        tree.start()
        return tree

    def stop(self) -> None:
        if not self._started or self._stopped:
            return
        self._stopped = True
        for tree in self._trees.values():
            tree.close()

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    # -- reads ------------------------------------------------------------
    def _tree_for(self, path: str) -> TreeCache | None:
        for root, tree in self._trees.items():
            if path == root or path.startswith(root + "/"):
                return tree
        return None

    def covers(self, path: str) -> bool:
        return self.running and self._tree_for(path) is not None

    def get(self, path: str) -> NodeData | None:
        """Cached (path, data, stat) or None (absent or not yet fetched)."""
        tree = self._tree_for(path)
        if tree is None:
            raise ValueError(f"{path} is not cached")
        return tree.get_data(path)

    def exists(self, path: str) -> bool:
        """Whether the cache knows ``path`` (no read, even when lazy)."""
        tree = self._tree_for(path)
        if tree is None:
            raise ValueError(f"{path} is not cached")
        if isinstance(tree, PersistentTreeCache):
            return tree.exists(path)
        return tree.get_data(path) is not None

    def unchanged(self, path: str) -> bool:
        """Whether ``path`` is known to be as it was created: no change of
        its data was notified since (False when unknown)."""
        tree = self._tree_for(path)
        if isinstance(tree, PersistentTreeCache):
            return tree.unchanged(path)
        return False

    def version(self, path: str) -> int | None:
        """The ``mzxid`` of the cached data of ``path`` while no change of
        it is known to be unread (None: absent, not read yet, or stale in
        a lazy cache); never reads.  Equal versions: the data is the same."""
        tree = self._tree_for(path)
        if tree is None:
            raise ValueError(f"{path} is not cached")
        if isinstance(tree, PersistentTreeCache):
            return tree.version(path)
        data = tree.get_data(path)
        return None if data is None else data.stat.mzxid

    def births(self, root: str) -> int | None:
        """How many znodes the cache of ``root`` has seen appear
        (``PersistentTreeCache.births``): a reader that finds it unchanged
        knows no znode was added since it last asked.  None when the cache
        cannot tell (one-shot watches); never reads."""
        tree = self._trees.get(root)
        if isinstance(tree, PersistentTreeCache):
            return tree.births()
        return None

    def proven_version(self, path: str) -> int | None:
        """``version`` when it also proves that no notified change is
        missing from the data (``PersistentTreeCache.proven_version``);
        None when the cache cannot tell -- always for one-shot watch
        caches, whose re-reads are not ordered with our replies.  Never
        reads."""
        tree = self._tree_for(path)
        if isinstance(tree, PersistentTreeCache):
            return tree.proven_version(path)
        return None

    def child_data(self, path: str, names: Callable[[str], bool] | None
                   = None, current: bool = True
                   ) -> list[tuple[str, NodeData | None]]:
        """(name, cached data) of every child of ``path`` (that ``names``
        accepts), sorted by name: one walk of the tree instead of a path
        lookup per child.  A lazy cache reads only the children asked
        for; not ``current``: any version it has will do."""
        tree = self._tree_for(path)
        if tree is None:
            raise ValueError(f"{path} is not cached")
        if isinstance(tree, PersistentTreeCache):
            return tree.child_data(path, names, current)
        node = tree._find_node(path)   # kazoo's own lookup
        if node is None:
            return []
        # Copy under the GIL: the cache thread may add children meanwhile.
        items = list(node._children.items())
        return sorted((name, child._data) for name, child in items
                      if names is None or names(name))

    def children(self, path: str) -> frozenset[str]:
        tree = self._tree_for(path)
        if tree is None:
            raise ValueError(f"{path} is not cached")
        return tree.get_children(path, default=frozenset())

    # -- own writes -------------------------------------------------------
    def expect_write(self, path: str, data: bytes, conditional: bool):
        """Before writing ``data`` to ``path``: a token for
        ``settle_write`` (None when no persistent cache holds ``path``)."""
        if not self.running:
            return None
        tree = self._tree_for(path)
        if isinstance(tree, PersistentTreeCache):
            return tree.expect_write(path, data, conditional)
        return None

    def settle_write(self, token, stat) -> None:
        """The outcome of an announced write: the reply's stat, or None
        (failed or unknown).  Every token must be settled."""
        if token is not None:
            token.cache.settle_write(token, stat)

    # -- events -----------------------------------------------------------
    def _make_listener(self, ready: threading.Event) -> Callable:
        def on_event(event: TreeEvent) -> None:
            if event.event_type == TreeEvent.INITIALIZED:
                ready.set()
            for callback in list(self._listeners):
                try:
                    callback()
                except Exception:
                    log.exception("Error in cache listener")
        return on_event

    @staticmethod
    def _on_fault(exc: Exception) -> None:
        log.warning("Cache error: %r", exc)
