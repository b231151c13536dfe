"""A subtree cache kept by one persistent recursive watch (ZooKeeper 3.6+).

kazoo's ``TreeCache`` (and our ``LeanTreeCache``) keep a one-shot watch on
every znode: each change costs a notification, a re-read *and* a re-armed
watch, and every created or deleted child a re-listing of its directory.
Under a burst of requests that listing of ``/nodepool/nodes/<id>/lock``
and the directories themselves was a quarter of the launcher's ZooKeeper
operations.  ``AddWatch`` with mode PERSISTENT_RECURSIVE (opcode 106) asks
the server for one watch on the whole subtree that is never used up and
names the znode of every creation, deletion and data change below it:

* created: the name is added to its parent (no listing); its data is read
  if it lies within ``data_depth`` of the root;
* deleted: the entry and everything below it goes;
* data changed: re-read, if within ``data_depth``.

Ordering: kazoo's connection thread receives watch notifications and
replies in the order the server sent them, and applies them to the cache
right there, in that order (the notification through ``EventTap``, a
reply through ``_Reply``; the work is a few dict updates, and reads are
sent, never waited for).  The server may still answer a read taken before
a change *after* notifying the change (reads run beside commits), so every
entry remembers the step that added it, and a listing or a "no node"
reply never undoes what a notification received after the read was sent
told: a child added since stays, a child deleted since is not brought
back.  A deleted znode can therefore never come back, and nothing
notified is lost.

Own writes (``expect_write``/``settle_write``): a write of ours to a cached
znode triggers a notification that would cost a re-read of what we just
wrote.  The store announces the write before sending it and hands over the
outcome.  If exactly one change of that znode was notified between the
announcement and the outcome, and the write succeeded, that change was ours
(a conditional write fails if anyone else wrote in between), and the
cache takes our data and the stat of the reply without a read.  Any doubt
(two changes, a failure, an unconditional write, connection trouble) and
it reads the znode as for a foreign change.

Lazy caches (``lazy=True``): a notified creation or change marks the
entry *stale* (the step of the notification) instead of reading it; a
reader asking for stale entries (``get_data``, ``child_data``) sends one
read for each, all before waiting for the first reply, and the reply
clears the mark if it was sent after the latest change notified (else the
entry stays stale and the next reader reads again).  A read in flight
that was sent after the latest change is waited for, not repeated.  So
several changes between two passes of a reader cost one read, and an
entry nobody asks for (another launcher's request, a node only its own
launcher looks at) costs none.  ``child_data`` takes a predicate over the
names: the children it rejects are not read.  ``exists`` and
``unchanged`` (no change notified since the creation was: the data is
what it was created with) answer without reading, and so do
``version`` (the ``mzxid`` of an entry with no unread change) and
``proven_version`` (the same, but only in a lazy cache and with no own
write settling: enough to trust a copy once a lock is held).  Own writes
work as above: a change notified while one is announced is settled by it (ours:
current; any doubt: stale).

Caution: one client must not also put a one-shot watch on the root path
itself (kazoo ``ChildrenWatch``/``DataWatch``): some server versions keep
one watch mode per path and connection, and the one-shot watch would
replace the persistent one.  Watches *below* the root (lock recipes) are
fine; their notifications reach both.

Threads: kazoo's connection thread applies every notification and reply
(``_deliver``, under ``_lock``, an ``RLock``), and the resync its state
listener starts after a reconnection.  It must never block: it never waits
for a reply, and reads queued while applying there are not sent from it
(kazoo wakes it with one byte per request on a socket pair that only it
drains) but handed to a ``nodepool-zk-cache-sender<root>`` thread, started
on first need and ended by ``close``.  ``start`` runs on the caller's thread
and waits there for the watch to be added.  Reads (``get_data``,
``child_data``, ``exists``, ...) come from any thread and walk the entries
without ``_lock`` (dict lookups and one-call copies, atomic under the GIL);
a lazy reader sends its reads from its own thread and waits there for the
replies, ``FETCH_TIMEOUT`` at most -- on kazoo's connection thread, which
applies the replies, a lazy read serves what the cache has without waiting.
Own writes are announced under ``_own_lock`` by the writing thread and
settled through ``_deliver``: by that thread for a transaction or a send
that failed, on kazoo's completion thread for a single set (its reply's
``rawlink``, see ``store.py``).  Listeners are called after ``_lock`` is
released, fault listeners while it is held, both on the thread that
delivered (usually kazoo's connection thread): they must be quick and never
wait for ZooKeeper.  ``EventTap`` calls its callbacks on the connection
thread; its list of taps is replaced under its own ``_lock`` and read
without it.

Failure story: while disconnected the cache serves what it had (callers
check ``suspended`` before acting); a lazy cache then serves stale
entries as they were, without reading, and a reader whose reads are not
answered within ``FETCH_TIMEOUT`` gets what the cache had (they stay
stale: the next reader or the resync reads them).  The server drops a connection's
watches with it, and kazoo re-registers only one-shot watches, so after
every reconnection (same or new session) the cache adds its watch again
and re-reads the whole subtree (``_resync``; a lazy cache lists it and
marks every entry stale and changed), reconciling what changed
meanwhile.  A server that does not know AddWatch (older than 3.6) makes
``start`` raise ``PersistentWatchUnsupported``; ``TreeCaches`` then falls
back to ``LeanTreeCache``.  Errors of individual reads are reported to the
fault listeners and otherwise ignored (the next notification or resync
repairs the entry).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import namedtuple
from typing import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, KazooException,
                              MarshallingError, NoNodeError,
                              UnimplementedError)
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.serialization import (GetChildren, GetData, Watch,
                                          int_struct, write_string)
from kazoo.protocol.states import KazooState
from kazoo.recipe.cache import NodeData, TreeEvent

__all__ = ["PersistentTreeCache", "PersistentWatchUnsupported", "EventTap"]

log = logging.getLogger("nodepool.zk.watchcache")

PERSISTENT_RECURSIVE = 1
# ZooKeeper's notification types (WatchedEvent.EventType).
CREATED, DELETED, CHANGED = 1, 2, 3


class PersistentWatchUnsupported(Exception):
    """The server rejected AddWatch (ZooKeeper older than 3.6)."""


class AddWatch(namedtuple("AddWatch", "path mode")):
    """The AddWatch request kazoo lacks: path, then the mode as an int."""

    type = 106

    def serialize(self) -> bytearray:
        body = bytearray(write_string(self.path))
        body.extend(int_struct.pack(self.mode))
        return body

    @classmethod
    def deserialize(cls, buffer, offset):
        return True       # the reply has no body


class EventTap:
    """Hands watch notifications under registered roots to callbacks, on
    kazoo's connection thread, in the order received.

    kazoo dispatches a notification only to the one-shot watchers it
    registered itself; this wraps its connection's notification reader
    (once per client) and then lets kazoo go on as before.  Callbacks run
    on the connection thread: they must be quick and never wait for
    ZooKeeper.
    """

    _ATTR = "_nodepool_event_tap"

    def __init__(self, kazoo: KazooClient) -> None:
        self.kazoo = kazoo
        self._taps: list[tuple[str, Callable[[int, str], None]]] = []
        self._lock = threading.Lock()
        connection = kazoo._connection
        original = connection._read_watch_event

        def read_watch_event(buffer, offset):
            taps = self._taps       # replaced, never mutated: no lock
            if taps:
                watch, _ = Watch.deserialize(buffer, offset)
                path = kazoo.unchroot(watch.path)
                for root, callback in taps:
                    if path == root or path.startswith(root + "/"):
                        callback(watch.type, path)
            return original(buffer, offset)

        connection._read_watch_event = read_watch_event

    @classmethod
    def of(cls, kazoo: KazooClient) -> "EventTap":
        tap = getattr(kazoo, cls._ATTR, None)
        if tap is None:
            tap = cls(kazoo)
            setattr(kazoo, cls._ATTR, tap)
        return tap

    def add(self, root: str, callback: Callable[[int, str], None]) -> None:
        with self._lock:
            self._taps = self._taps + [(root, callback)]

    def remove(self, callback: Callable[[int, str], None]) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t[1] != callback]


class _Entry:
    __slots__ = ("children", "data", "born", "stale", "reading", "changed")

    def __init__(self, born: int = 0) -> None:
        self.children: dict[str, _Entry] = {}
        self.data: NodeData | None = None
        self.born = born          # the cache's step that added it
        # Lazy caches: the step of the latest change notified and not read
        # since (0: the data is current), and the read in flight for it.
        self.stale = 0
        self.reading: _Reply | None = None
        self.changed = False      # a change was notified since creation


class _Reply:
    """kazoo's side of a read: ``set``/``set_exception`` are called on the
    connection thread, after every notification received before the
    reply, and apply it."""

    __slots__ = ("cache", "kind", "path", "step", "sent", "done")

    def __init__(self, cache: "PersistentTreeCache", kind: str, path: str):
        self.cache = cache
        self.kind = kind
        self.path = path
        self.step = cache._step     # when the request was sent
        self.sent = False
        # Set once applied (lazy caches: a reader may wait for it).
        self.done = threading.Event() if cache.lazy else None

    def set(self, value) -> None:
        if not self.sent:
            self.sent = True
            self.cache._deliver(self.kind, self.path, value, None,
                                self.step)
            self._wake()

    def set_exception(self, exc) -> None:
        if not self.sent:
            self.sent = True
            self.cache._deliver(self.kind, self.path, None, exc, self.step)
            self._wake()

    def _wake(self) -> None:
        if self.done is not None:
            self.done.set()


class _OwnWrite:
    __slots__ = ("cache", "path", "data", "conditional", "changes")

    def __init__(self, cache: "PersistentTreeCache", path: str, data: bytes,
                 conditional: bool):
        self.cache = cache
        self.path = path
        self.data = data
        self.conditional = conditional
        self.changes = 0




class PersistentTreeCache:
    """The cache of ``root``: data of znodes at most ``data_depth`` below
    it, names of the children of znodes at most ``children_depth`` below
    it.  Reading interface as kazoo's TreeCache (``get_data``,
    ``get_children``, ``listen``, ``listen_fault``, ``start``, ``close``)
    plus ``child_data``.  ``lazy``: data is read when asked for, not
    when notified (see the module docstring)."""

    # A reader waits this long for the reads it sent, then takes what the
    # cache has (connection trouble: the resync repairs it).
    FETCH_TIMEOUT = 10.0

    def __init__(self, kazoo: KazooClient, root: str, data_depth: int,
                 children_depth: int, lazy: bool = False) -> None:
        self.kazoo = kazoo
        self.lazy = lazy
        self.root = root.rstrip("/") or "/"
        self.data_depth = data_depth
        self.children_depth = children_depth
        self._base = self.root.count("/") if self.root != "/" else 0
        self._tree = _Entry()
        # Everything below is changed only under _lock (see _deliver).
        self._lock = threading.RLock()
        self._listeners: list[Callable] = []
        self._fault_listeners: list[Callable] = []
        self._started = False
        self._closed = False
        # Reads to send once the lock is released; the sender thread sends
        # those queued on kazoo's connection thread (see _flush).
        self._outbox: list = []
        self._sendq: queue.SimpleQueue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._outstanding = 0            # reads in flight
        self._step = 0                   # items applied
        # Children of the root added (notified or found by a listing): a
        # reader that counts them knows whether any appeared since it
        # last looked, without walking the tree (``births``).
        self._births = 0
        # Listings in flight, and path -> step of the deletions notified
        # meanwhile, so that a listing sent before a deletion cannot bring
        # the child back.  Listings are only sent when (re)syncing: in the
        # steady state there are none, and no tombs.
        self._listings = 0
        self._tombs: dict[str, int] = {}
        self._initialized = False
        self._synced = False             # a resync was started
        self._own: dict[str, list[_OwnWrite]] = {}
        self._own_lock = threading.Lock()
        self._tap = EventTap.of(kazoo)

    # -- lifecycle --------------------------------------------------------
    def start(self) -> None:
        """Add the watch and start the first full read; raises
        ``PersistentWatchUnsupported`` if the server lacks AddWatch."""
        if self._started:
            raise KazooException("already started")
        self._started = True
        self.kazoo.ensure_path(self.root)
        self._tap.add(self.root, self._on_notification)
        try:
            self._add_watch().get(timeout=self.kazoo._session_timeout / 1000)
        except (UnimplementedError, MarshallingError,
                BadArgumentsError) as exc:
            self._tap.remove(self._on_notification)
            raise PersistentWatchUnsupported(
                f"AddWatch on {self.root} rejected: {exc!r}") from exc
        except KazooException:
            pass      # connection trouble: the reconnection resyncs
        self.kazoo.add_listener(self._on_state)
        self._deliver("resync", None, False, None, 0)   # watch just added

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._tap.remove(self._on_notification)
        self.kazoo.remove_listener(self._on_state)
        self._sendq.put(None)

    def listen(self, callback: Callable[[TreeEvent], None]) -> None:
        self._listeners.append(callback)

    def listen_fault(self, callback: Callable[[Exception], None]) -> None:
        self._fault_listeners.append(callback)

    # -- reads (any thread) -------------------------------------------------
    def _find(self, path: str) -> _Entry | None:
        if path == self.root:
            return self._tree
        if not path.startswith(self.root + "/"):
            return None
        entry = self._tree
        for name in path[len(self.root) + 1:].split("/"):
            entry = entry.children.get(name)
            if entry is None:
                return None
        return entry

    def get_data(self, path: str) -> NodeData | None:
        entry = self._find(path)
        if entry is None:
            return None
        if entry.stale:
            self._fetch([(path, entry)])
        return entry.data

    def exists(self, path: str) -> bool:
        """Whether ``path`` is known to exist (no read, even when lazy)."""
        return self._find(path) is not None

    def unchanged(self, path: str) -> bool:
        """Whether ``path`` is known and no change of its data was
        notified since its creation (nor since a resync: then it counts as
        changed)."""
        entry = self._find(path)
        return entry is not None and not entry.changed

    def version(self, path: str) -> int | None:
        """The ``mzxid`` of the data held for ``path`` while it is current
        (no change notified since it was read); None when ``path`` is
        unknown, not read yet or stale.  No read, even when lazy."""
        entry = self._find(path)
        if entry is None or entry.stale or entry.data is None:
            return None
        return entry.data.stat.mzxid

    def proven_version(self, path: str) -> int | None:
        """``version``, when it proves that nothing notified is missing
        from the data: a lazy cache (it marks a notified change stale at
        once) and no own write settling (its change leaves the entry
        unmarked until the outcome).  None otherwise, and always for a
        cache that reads when notified: its entry shows the old data,
        unmarked, until the read's reply.  No read.  Asked after a reply,
        it tells whether the data is what the server had when it answered
        (``node_store.lock_node``)."""
        if not self.lazy:
            return None
        with self._lock:          # a settling write changes both at once
            if self._own.get(path):
                return None
            return self.version(path)

    def births(self) -> int:
        """How many children of the root were added so far (the node
        znodes of ``/nodepool/nodes``, not their locks): unchanged means
        none appeared since the caller last asked (one removed and added
        again counts).  No read, no lock: an int."""
        return self._births

    def get_children(self, path: str, default=None):
        entry = self._find(path)
        if entry is None:
            return default
        return frozenset(list(entry.children))

    def child_data(self, path: str, names: Callable[[str], bool] | None
                   = None, current: bool = True
                   ) -> list[tuple[str, NodeData | None]]:
        """(name, data) of the children of ``path`` (those ``names``
        accepts), sorted by name; a lazy cache reads the stale ones of
        those first, all at once, and nothing of the others.  Not
        ``current``: any version read before will do (only those never
        read are read)."""
        entry = self._find(path)
        if entry is None:
            return []
        # list() of a dict view is one C call: atomic under the GIL.
        items = list(entry.children.items())
        if names is not None:
            items = [(name, child) for name, child in items if names(name)]
        stale = [(f"{path}/{name}", child) for name, child in items
                 if child.stale and (current or child.data is None)]
        if stale:
            self._fetch(stale)
        return sorted((name, child.data) for name, child in items)

    def _fetch(self, entries: list[tuple[str, "_Entry"]]) -> None:
        """Read the stale ``entries`` (one read each, all sent before the
        first reply is waited for; a read already in flight that was sent
        after the latest change is waited for instead).  Without a
        connection, or once ``FETCH_TIMEOUT`` has passed, the entries keep
        the data they had."""
        if not self.kazoo.connected or self._closed or self._on_routine():
            return
        waits = []
        with self._lock:
            for path, entry in entries:
                if not entry.stale:
                    continue
                reply = entry.reading
                if reply is None or reply.step < entry.stale:
                    reply = entry.reading = self._send("data", GetData, path)
                waits.append(reply)
            batch, self._outbox = self._outbox, []
        if batch:
            self._flush(batch)
        deadline = time.monotonic() + self.FETCH_TIMEOUT
        for reply in waits:
            if not reply.done.wait(max(0.0, deadline - time.monotonic())):
                log.warning("Cache of %s: no reply to reading %s in %s s",
                            self.root, reply.path, self.FETCH_TIMEOUT)
                return

    # -- own writes (any thread) ------------------------------------------
    def expect_write(self, path: str, data: bytes,
                     conditional: bool) -> _OwnWrite | None:
        """Call before sending a write of ``data`` to ``path``; pass the
        token to ``settle_write`` with the outcome."""
        if self._depth(path) > self.data_depth or self._closed:
            return None
        token = _OwnWrite(self, path, data, conditional)
        with self._own_lock:
            self._own.setdefault(path, []).append(token)
        return token

    def settle_write(self, token: _OwnWrite | None, stat) -> None:
        """``stat``: the reply's stat when the write succeeded, None when
        it failed or its outcome is unknown."""
        if token is not None:
            self._deliver("settle", token.path, token, stat, 0)

    # -- kazoo's connection thread ------------------------------------------
    def _on_notification(self, kind: int, path: str) -> None:
        self._deliver("event", path, kind, None, 0)

    def _on_state(self, state) -> None:
        if state == KazooState.CONNECTED:
            self._deliver("resync", None, None, None, 0)

    def _deliver(self, kind, path, value, exc, sent: int) -> None:
        """Apply one notification, reply, outcome or resync, right away.

        Notifications and replies arrive on kazoo's connection thread in
        the order the server sent them and are applied there (a hand-off
        to a thread of our own cost a wake-up per notification, a
        measurable share of the launcher's CPU); the outcomes of own
        writes come from the writing threads, after their replies.  The
        work is small (dict updates; reads are queued, never waited
        for), and never raises into kazoo."""
        event = None
        with self._lock:
            if self._closed:
                return
            self._step += 1
            try:
                changed = self._apply(kind, path, value, exc, sent)
            except Exception as error:
                log.exception("Cache of %s: error applying %s %s",
                              self.root, kind, path)
                self._fault(error)
                changed = False
            if (not self._initialized and self._synced
                    and self._outstanding == 0):
                self._initialized = True
                event = TreeEvent.make(TreeEvent.INITIALIZED, None)
            elif changed:
                event = TreeEvent.make(TreeEvent.NODE_UPDATED, None)
            batch, self._outbox = self._outbox, []
        if batch:
            self._flush(batch)
        if event is not None:
            self._publish(event)

    def _flush(self, batch: list) -> None:
        """Send queued reads, never holding ``_lock`` (a send may wait for
        kazoo's connection thread) and never on that thread itself: kazoo
        wakes it with one byte per request on a socket pair that only
        it drains, so a few hundred sends from it (a resync) would block
        it for good.  Those go to the sender thread."""
        if not self._on_routine():
            for request, reply in batch:
                self.kazoo._call(request, reply)
            return
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_forever, daemon=True,
                    name=f"nodepool-zk-cache-sender{self.root}")
                self._sender.start()
        self._sendq.put(batch)

    def _on_routine(self) -> bool:
        """Are we on kazoo's connection thread (which applies replies)?"""
        routine = getattr(self.kazoo._connection, "_connection_routine",
                          None)
        return threading.current_thread() is routine

    def _send_forever(self) -> None:
        while True:
            batch = self._sendq.get()
            if batch is None:
                return
            for request, reply in batch:
                self.kazoo._call(request, reply)

    # -- applying (under _lock) -------------------------------------------

    def _apply(self, kind, path, value, exc, sent: int) -> bool:
        if kind == "event":
            return self._on_event(value, path)
        if kind == "data":
            self._outstanding -= 1
            return self._on_data(path, value, exc, sent)
        if kind == "children":
            self._outstanding -= 1
            self._listings -= 1
            try:
                return self._on_children(path, value, exc, sent)
            finally:
                if self._listings == 0:
                    self._tombs.clear()
        if kind == "settle":
            return self._on_settle(value, exc)
        if kind == "resync":
            self._synced = True
            self._resync(add_watch=value is not False)
            return self.lazy      # lazy: everything is stale now
        if kind == "watch":
            if exc is not None and not self._closed:
                log.warning("Cache of %s: could not add the watch: %r",
                            self.root, exc)
            return False
        raise ValueError(f"unknown cache item {kind!r}")

    def _depth(self, path: str) -> int:
        return path.count("/") - self._base if path != self.root else 0

    def _send(self, kind: str, request_type, path: str) -> _Reply:
        """Queue a read in the outbox (sent by ``_flush`` once the lock is
        released)."""
        self._outstanding += 1
        if kind == "children":
            self._listings += 1
        reply = _Reply(self, kind, path)
        self._outbox.append((
            request_type(_prefix_root(self.kazoo.chroot, path), None),
            reply))
        return reply

    def _read_data(self, path: str, entry: _Entry | None) -> None:
        """The data of ``path`` is (or may be) out of date: read it now,
        or, when lazy, mark it stale (read when asked for)."""
        if not self.lazy:
            self._send("data", GetData, path)
        elif entry is not None:
            entry.stale = self._step

    def _refresh(self, path: str, depth: int) -> None:
        if depth <= self.data_depth and path != self.root:
            entry = self._find(path)
            if entry is not None:
                # Found by a (re)listing: what happened to it is unknown.
                entry.changed = True
            self._read_data(path, entry)
        if depth <= self.children_depth:
            self._send("children", GetChildren, path)

    def _add_watch(self):
        result = self.kazoo.handler.async_result()
        self.kazoo._call(AddWatch(_prefix_root(self.kazoo.chroot, self.root),
                                  PERSISTENT_RECURSIVE), result)
        return result

    def _resync(self, add_watch: bool = True) -> None:
        """After (re)connecting: watch again, then re-read everything (the
        read replies come after the watch is in place)."""
        if add_watch:
            self._outbox.append((AddWatch(
                _prefix_root(self.kazoo.chroot, self.root),
                PERSISTENT_RECURSIVE), _Reply(self, "watch", self.root)))
        self._refresh_tree(self.root, self._tree, 0)

    def _refresh_tree(self, path: str, entry: _Entry, depth: int) -> None:
        self._refresh(path, depth)
        if depth < max(self.data_depth, self.children_depth):
            for name, child in list(entry.children.items()):
                self._refresh_tree(f"{path}/{name}", child, depth + 1)

    def _parent(self, path: str) -> tuple[_Entry | None, str]:
        parent, _, name = path.rpartition("/")
        return self._find(parent or "/"), name

    def _on_event(self, kind: int, path: str) -> bool:
        depth = self._depth(path)
        if kind == CHANGED or kind == CREATED:
            with self._own_lock:
                for token in self._own.get(path, ()):
                    token.changes += 1
                pending = bool(self._own.get(path))
        if kind == CREATED:
            if depth == 0 or depth > self.children_depth + 1:
                return False
            parent, name = self._parent(path)
            if parent is None or name in parent.children:
                return False
            child = parent.children[name] = _Entry(self._step)
            if depth == 1:
                self._births += 1
            if depth <= self.data_depth:
                self._read_data(path, child)
            return True
        if kind == DELETED:
            if depth == 0:
                self._tree.children.clear()
                return True
            self._bury(path)
            parent, name = self._parent(path)
            if parent is None:
                return False
            return parent.children.pop(name, None) is not None
        if kind == CHANGED:
            entry = self._find(path) if 0 < depth <= self.data_depth \
                else None
            if entry is not None:
                entry.changed = True
            if entry is not None and not pending:
                self._read_data(path, entry)
                return self.lazy     # lazy: stale now, nothing to await
            return False             # an own write: settled later
        return False

    def _on_settle(self, token: _OwnWrite, stat) -> bool:
        with self._own_lock:
            tokens = self._own.get(token.path, [])
            if token in tokens:
                tokens.remove(token)
            if not tokens:
                self._own.pop(token.path, None)
        if token.changes == 0:
            return False          # no change notified: nothing to read
        entry = self._find(token.path)
        if entry is None:
            return False          # deleted meanwhile
        if stat is not None and token.changes == 1 and token.conditional:
            entry.data = NodeData.make(token.path, token.data, stat)
            entry.stale = 0
            return True
        self._read_data(token.path, entry)
        return self.lazy          # lazy: stale now, nothing to await

    def _on_data(self, path: str, value, exc, sent: int) -> bool:
        if exc is not None:
            if isinstance(exc, NoNodeError):
                return self._forget(path, sent)
            entry = self._find(path)
            if entry is not None and entry.reading is not None \
                    and entry.reading.step <= sent:
                entry.reading = None      # stays stale: read again
            self._fault(exc)
            return False
        entry = self._find(path)
        if entry is None:
            return False          # deleted before the reply was processed
        if entry.reading is not None and entry.reading.step <= sent:
            entry.reading = None
        if entry.stale and entry.stale <= sent:
            entry.stale = 0       # read after the latest change notified
        data, stat = value
        old = entry.data
        if old is not None and old.stat.mzxid > stat.mzxid:
            return False          # an own write newer than this read
        entry.data = NodeData.make(path, data, stat)
        return True

    def _on_children(self, path: str, value, exc, sent: int) -> bool:
        """A listing reconciles the children known when it was sent.  The
        server may answer a read from before a change after notifying the
        change, so the listing does not undo what notifications since
        told: a child added after it was sent stays, one deleted after it
        was sent is not brought back."""
        if exc is not None:
            if isinstance(exc, NoNodeError) and path != self.root:
                return self._forget(path, sent)
            if not isinstance(exc, NoNodeError):
                self._fault(exc)
            return False
        entry = self._find(path)
        if entry is None:
            return False
        depth = self._depth(path) + 1
        names = set(value)
        changed = False
        for gone in set(entry.children) - names:
            if entry.children[gone].born < sent:
                del entry.children[gone]
                changed = True
        for name in sorted(names - set(entry.children)):
            if self._deleted_since(f"{path}/{name}", sent):
                continue
            child = entry.children[name] = _Entry(self._step)
            if depth == 1:
                self._births += 1
            changed = True
            if depth <= self.data_depth or depth <= self.children_depth:
                self._refresh_tree(f"{path}/{name}", child, depth)
        return changed

    def _forget(self, path: str, sent: int) -> bool:
        """A read sent at step ``sent`` found ``path`` gone: forget it,
        unless a notification added it after the read was sent."""
        parent, name = self._parent(path)
        entry = None if parent is None else parent.children.get(name)
        if entry is None or entry.born >= sent:
            return False
        del parent.children[name]
        return True

    def _bury(self, path: str) -> None:
        if self._listings:
            self._tombs[path] = self._step

    def _deleted_since(self, path: str, sent: int) -> bool:
        return self._tombs.get(path, -1) >= sent

    def _publish(self, event: TreeEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("Error in cache listener")

    def _fault(self, exc: Exception) -> None:
        if isinstance(exc, KazooException) and not self._closed \
                and not self.kazoo.connected:
            return     # connection trouble: the resync repairs it
        for callback in list(self._fault_listeners):
            try:
                callback(exc)
            except Exception:
                log.exception("Error in cache fault listener")
