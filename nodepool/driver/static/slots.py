"""The static driver's slots: pre-existing hosts, kept registered as READY
nodes.

``StaticSlots`` keeps, for every configured host, ``max-parallel-jobs``
node znodes ("slots") registered, with ``launcher`` = ``static driver``
(``REGISTERED_NODE_LAUNCHER``).  A slot whose node was used is deleted by
the deleted-node worker (no cloud call) and registered again READY by the
next sync (``wake``, from ``StaticAdapter.node_deleted``).  Config changes
update READY unlocked nodes; removed hosts' nodes are deleted -- but a node
that is held, in use or locked is never touched, nor is a node of this
provider name that a cloud driver launched (its ``launcher`` is a pool
worker's).  It reaches the launcher only through the ``NodeBoard`` of the
adapter contract (ZooKeeper, ``delete_node``, ``on_change``): nothing here
imports the launcher.

Threads: ``<provider>-static-sync`` runs the sync (it may keyscan, which
blocks for up to a host's ``timeout``), every few seconds and when woken.
The pool worker thread calls ``has_capacity_now`` before it accepts a
request; that is where a free slot's host is checked for liveness, so a
dead host is caught at hand-out time, not only on the next sync.
``node_deleted`` runs on the provider's loop thread and only wakes the
sync.

Node fields are those upstream's static driver writes: ``hostname``,
``interface_ip`` and ``external_id`` are the configured ``name``; the first
address that name resolves to is ``public_ipv4`` (or ``public_ipv6``);
``cloud``, ``region``, ``az``, ``host_id`` and ``resources`` stay unset.
Only ``ssh`` and ``network_cli`` hosts have host keys (``gathers_host_keys``);
a host of any other connection type (``winrm``...) is checked by a plain TCP
connection to its port and its nodes have no host keys.

Failure story: a host whose name does not resolve, that refuses the
keyscan (or, without host keys, the TCP connection), or that offers keys
that do not match its ``host-key`` values, is not registered.  Such a host
is an unreachable endpoint of its own (one host never holds back another):
each host has an ``AccessGate``, so it is contacted again after an
exponential back-off (from 1 s up to a minute, reset when it answers)
rather than on every sync, and its failure is logged once at WARNING with
repeat summaries; a key mismatch is logged once, then counted.  A
registered host that stops answering is deregistered (its free READY
slots are deleted) instead of being handed out, and registered again by
the first sync that finds it answering (once its back-off allows).  With
``host-key-checking: false`` the launcher never connects to an SSH host (no
scan, no liveness check: the configured keys are used as they are), so
such a host is assumed to be alive; a host without host keys is still
connected to once before it is registered (as upstream), never afterwards.
Two launchers serving the same static provider may both register a free
slot at once; the next sync of either removes the duplicate (a spare READY
one, never one in use).  An exception in one sync pass is logged and the
next pass starts afresh.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Iterable

from nodepool.driver import errors
from nodepool.driver.adapter import REGISTERED_NODE_LAUNCHER, NodeBoard
from nodepool.driver.backoff import SUMMARY_INTERVAL, AccessGate, RepeatLog
from nodepool.driver.keyscan import (
    check_connection, gathers_host_keys, port_open, scan_failure, scan_host)
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState

SYNC_INTERVAL = 5.0
# A slot promised to a request being taken is not offered to another one
# until the node cache shows it taken, or for at most this long (the
# take runs on another thread and the cache lags by milliseconds).
PROMISE_TTL = 5.0


def registered(node: Node) -> bool:
    """True for a node a driver registered (a slot), not one launched."""
    return node.launcher == REGISTERED_NODE_LAUNCHER


def _key_id(key: str) -> str:
    return " ".join(key.split()[:2])


def resolve_address(name: str, port: int) -> dict[str, str | None]:
    """``public_ipv4``/``public_ipv6`` of a static node, as upstream fills
    them: the first address ``name`` resolves to, by its family.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(name, port)[0]
    if family == socket.AF_INET:
        return {"public_ipv4": sockaddr[0], "public_ipv6": None}
    if family == socket.AF_INET6:
        return {"public_ipv4": None, "public_ipv6": sockaddr[0]}
    raise OSError(f"{name} resolves to no IPv4 or IPv6 address")


def host_identity(obj) -> tuple:
    """(name, username, port): how a static host is identified."""
    if isinstance(obj, Node):
        return (obj.hostname, obj.username, obj.connection_port)
    return (obj.name, obj.username, obj.connection_port)


class StaticSlots:
    """The slots of one static provider (see the module docstring)."""

    def __init__(self, provider, board: NodeBoard,
                 log: logging.Logger | None = None):
        self.provider = provider
        self.board = board
        self.zk = board.zk
        self.slog = log or logging.getLogger(
            f"nodepool.driver.static.{provider.name}")
        self._stop = threading.Event()
        self._sync_wake = threading.Event()
        self._sync_thread: threading.Thread | None = None
        self.synced = threading.Event()   # set after each completed sync
        self._promised: dict[str, float] = {}   # node id -> monotonic
        self._promise_lock = threading.Lock()
        # One back-off per host (sync thread only): an unreachable host is
        # not asked again before its gate allows it, and is logged once.
        self._gates: dict[tuple, AccessGate] = {}
        self._repeats = RepeatLog(self.slog, SUMMARY_INTERVAL)

    def start(self) -> None:
        self._sync_thread = threading.Thread(
            target=self._sync_loop, name=f"{self.provider.name}-static-sync",
            daemon=True)
        self._sync_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._sync_wake.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=15)

    def wake(self) -> None:
        """Sync soon (a slot came free, or a test wants a pass)."""
        self._sync_wake.set()

    def has_capacity_now(self, pool, request,
                         nodes: Callable[[], Iterable[Node]]) -> bool:
        """True when a free, live slot exists for every requested label.

        Free slots are checked in the order the request handler reuses them
        (node id order), so the slot it will take has just been found
        alive; a slot whose host does not answer is deregistered here,
        before anyone can hand it out.  The slots counted are promised to
        this request (``PROMISE_TTL``), so a burst of requests in one pass
        is accepted only as far as there are slots; the rest is deferred.
        """
        now = time.monotonic()
        with self._promise_lock:
            self._promised = {i: t for i, t in self._promised.items()
                              if now - t < PROMISE_TTL}
            promised = set(self._promised)
        hosts = {host_identity(h): h for h in pool.nodes}
        wanted: dict[str, int] = {}
        for label in request.node_types:
            wanted[label] = wanted.get(label, 0) + 1
        alive: dict[tuple, bool] = {}
        chosen: list[str] = []
        for node in nodes():
            if not wanted:
                break
            if (node.provider != self.provider.name
                    or node.pool != pool.name or not registered(node)
                    or node.state != NodeState.READY or node.allocated_to
                    or node.id in promised or self.zk.is_locked(node)):
                continue
            useful = [lb for lb in node.type or [] if wanted.get(lb)]
            if not useful:
                continue
            if not self._slot_alive(node, hosts, alive):
                continue
            label = useful[0]
            chosen.append(node.id)
            wanted[label] -= 1
            if not wanted[label]:
                del wanted[label]
        if wanted:
            return False
        with self._promise_lock:
            for node_id in chosen:
                self._promised[node_id] = now
        return True

    def _slot_alive(self, node: Node, hosts: dict, alive: dict) -> bool:
        host = hosts.get(host_identity(node))
        if host is None or not host.host_key_checking:
            return True   # the sync removes it / we never connect to it
        key = (host.name, host.connection_port)
        if key not in alive:
            alive[key] = self._reachable(host)
        if not alive[key]:
            self.slog.warning("Static host %s is unreachable; not handing "
                              "out node %s", host.name, node.id)
            # The pool worker's records are read-only: deregister a copy.
            self._deregister(node.clone(), "host unreachable")
            self._sync_wake.set()
        return alive[key]

    # -- the sync -------------------------------------------------------------
    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                self.slog.exception("Static node sync failed")
            self.synced.set()
            self._sync_wake.wait(SYNC_INTERVAL)
            self._sync_wake.clear()

    def sync(self) -> None:
        nodes = [n for n in self.zk.iter_nodes(cached=False)
                 if n.provider == self.provider.name and registered(n)]
        wanted = {}
        for pool in self.provider.pools.values():
            for host in pool.nodes:
                wanted[host_identity(host)] = (pool, host)
        for node in nodes:
            key = host_identity(node)
            if key not in wanted or node.pool != wanted[key][0].name:
                self._deregister(node, "host removed from the config")
        for key, (pool, host) in wanted.items():
            if self._stop.is_set():
                return
            mine = [n for n in nodes if host_identity(n) == key
                    and n.pool == pool.name]
            self._sync_host(pool, host, mine)

    def _sync_host(self, pool, host, nodes: list[Node]) -> None:
        # Slots beyond max-parallel-jobs go first, whatever else happens
        # (a full or unreachable host must still shrink).
        for node in nodes:
            if node.slot is not None and node.slot >= host.max_parallel_jobs:
                self._deregister(node, "max-parallel-jobs lowered")
        self._drop_duplicates(nodes)
        ready = [n for n in nodes if n.state == NodeState.READY
                 and (n.slot is None or n.slot < host.max_parallel_jobs)]
        if ready and host.host_key_checking and not self._reachable(host):
            self.slog.warning("Static host %s is unreachable; deregistering",
                              host.name)
            for node in ready:
                self._deregister(node, "host unreachable")
            return
        taken = {n.slot for n in nodes if n.state != NodeState.DELETED}
        free_slots = [s for s in range(host.max_parallel_jobs)
                      if s not in taken]
        if not ready and not free_slots:
            return
        gate = self._gate(host)
        try:
            ticket = gate.admit()
        except errors.EndpointError:
            return              # backing off; the gate said why, once
        address, keys, failure = self._contact(host, bool(free_slots))
        gate.answered(ticket, None if failure is None
                      else errors.EndpointError(failure))
        for node in ready:
            self._update(node, pool, host, address)
        if not free_slots or address is None or keys is None:
            return
        for slot in free_slots:
            self._register(pool, host, slot, keys, address)

    def _gate(self, host) -> AccessGate:
        key = host_identity(host)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = AccessGate(
                f"{self.provider.name} host {host.name} port "
                f"{host.connection_port}", logger=self.slog,
                level=logging.WARNING)
        return gate

    def _contact(self, host, registering: bool):
        """(address, host keys, failure): what registering ``host`` needs,
        or why it cannot be reached (resolving, keyscan, TCP)."""
        try:
            address = resolve_address(host.name, host.connection_port)
        except OSError as e:
            return None, None, (f"cannot resolve its name ({e}); not "
                                "registering it")
        if not registering:
            return address, None, None
        keys, failure = self._host_keys(host)
        return address, keys, failure

    def _reachable(self, host) -> bool:
        """The liveness check: an SSH banner, or (no host keys) TCP."""
        if gathers_host_keys(host.connection_type):
            return check_connection(host.name, host.connection_port,
                                    host.timeout)
        return port_open(host.name, host.connection_port, host.timeout)

    def _drop_duplicates(self, nodes: list[Node]) -> None:
        """One node per slot: two launchers serving the same static
        provider may both register a free slot at the same moment."""
        by_slot: dict[int, list[Node]] = {}
        for node in nodes:
            if node.slot is not None and node.state not in (
                    NodeState.DELETING, NodeState.DELETED):
                by_slot.setdefault(node.slot, []).append(node)
        for same in by_slot.values():
            if len(same) < 2:
                continue
            # Keep one that is in use if any, else the oldest.
            busy = [n for n in same if n.state != NodeState.READY
                    or n.allocated_to]
            keep = busy[0] if busy else min(same, key=lambda n: n.id)
            for node in same:
                if node is not keep:
                    self._deregister(node, f"duplicate of slot {node.slot}")

    def _host_keys(self, host) -> tuple[list[str] | None, str | None]:
        """(the keys to register the host with, None) or, when it must not
        be registered now, (None, why it cannot be reached); a host whose
        keys do not match is logged here (once, then counted)."""
        gathers = gathers_host_keys(host.connection_type)
        if gathers and not host.host_key_checking:
            return list(host.host_keys), None
        # As upstream, a host without host keys has its port checked even
        # with host-key-checking off.
        try:
            keys = scan_host(host.name, host.connection_port,
                             host.connection_type, host.timeout)
        except Exception as e:
            return None, scan_failure(host.connection_type, e)
        if not gathers:
            return [], None
        # Compare "<type> <base64>" only: a key pasted from a .pub file
        # carries a comment the scan cannot return.
        offered = {_key_id(k) for k in keys}
        missing = [k for k in host.host_keys if _key_id(k) not in offered]
        key = f"host-keys {host_identity(host)}"
        if missing:
            self._repeats.report(
                key, f"Static host {host.name} does not offer the "
                "configured host-key(s)", "not registering it")
            return None, None
        self._repeats.clear(key, f"Static host {host.name} offers its "
                            "configured host-key(s) again")
        return keys, None

    def _fields(self, pool, host, address: dict | None) -> dict:
        """What a READY node of ``host`` carries besides its identity and
        scanned keys; ``address`` (None: leave the addresses alone) from
        ``resolve_address``."""
        fields = {"type": list(host.labels), "username": host.username,
                  "connection_type": host.connection_type,
                  "connection_port": host.connection_port,
                  "ssh_port": host.connection_port,
                  "python_path": host.python_path,
                  "shell_type": host.shell_type,
                  # Unset as upstream (earlier versions wrote "static").
                  "cloud": None,
                  "attributes": (dict(pool.node_attributes)
                                 if pool.node_attributes else None)}
        if not gathers_host_keys(host.connection_type):
            fields["host_keys"] = []
        elif not host.host_key_checking:
            # Unscanned keys come from the config, so they follow it.
            fields["host_keys"] = list(host.host_keys)
        if address is not None:
            fields.update(address)
        return fields

    def _register(self, pool, host, slot: int, keys: list[str],
                  address: dict) -> None:
        node = Node()
        node.provider = self.provider.name
        node.pool = pool.name
        node.launcher = REGISTERED_NODE_LAUNCHER
        node.hostname = host.name
        node.interface_ip = host.name
        node.external_id = host.name
        node.slot = slot
        node.host_keys = keys
        for k, v in self._fields(pool, host, address).items():
            setattr(node, k, v)
        node.set_state(NodeState.READY)
        self.zk.store_node(node)
        self.slog.info("Registered static node %s (%s slot %d)", node.id,
                       host.name, slot)
        self.board.on_change()

    def _update(self, node: Node, pool, host, address: dict | None) -> None:
        fields = self._fields(pool, host, address)
        if all(getattr(node, k) == v for k, v in fields.items()):
            return
        if not self._lock_free(node):
            return
        try:
            if node.state == NodeState.READY:
                for k, v in fields.items():
                    setattr(node, k, v)
                self.zk.store_node(node)
        finally:
            self.zk.unlock_node(node)

    def _deregister(self, node: Node, why: str) -> None:
        if node.state != NodeState.READY or node.allocated_to:
            return   # held, in use, allocated: never touched
        if not self._lock_free(node):
            return
        if node.state != NodeState.READY or node.allocated_to:
            self.zk.unlock_node(node)
            return
        self.slog.info("Deregistering static node %s: %s", node.id, why)
        node.set_state(NodeState.DELETING)
        self.zk.store_node(node)
        self.board.delete_node(node)

    def _lock_free(self, node: Node) -> bool:
        if self.zk.is_locked(node):
            return False
        try:
            self.zk.lock_node(node, blocking=False)
            return True
        except (zk_errors.LockError, zk_errors.NotFound):
            return False
