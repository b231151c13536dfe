"""UsageBook: each launcher sums up its own nodes in one record.

With several launchers on one ZooKeeper, each used to read every node the
others created: quota sums a provider's nodes (once each, any version),
and the stats leader counts every node by state (each change).  Instead
each launcher publishes what its own nodes are in one record, and the
others read that record instead of the nodes.

Record: ``/nodepool/launcher-usage/<member>`` (ephemeral; ``member`` is
``<hostname>-<uuid4 hex>``, new on every start), JSON::

    {"hostname": "nl1",
     "nodes": {"0000000042": {"provider": "aws", "pool": "main",
                              "state": "ready", "type": ["small"],
                              "resources": {"instances": 1, "cores": 2},
                              "allocated_to": "200-0000000007"}}}

It lists the nodes this launcher process created (``NodeStore``
remembers their ids) of providers it runs that still exist, with what
quota, spares, tenant limits and the gauges look at: provider, pool,
state, labels, cost (``resources``: the node's own, else its label's cost
as quota counts it) and, when set, ``tenant_name`` and ``allocated_to``.
It is rewritten when that changes, at most every ``interval`` (1 s).
Upstream launchers and Zuul never read it; the node znodes are unchanged.

Readers (``Claims``, one snapshot per quota recount, routing, deleter or
gauge pass): a node a live peer's record lists is *claimed*: it is not
read, its summary stands for it -- counted only while its znode exists
(the cache knows without reading; without a running cache, always), so
a deletion is seen at once even in a stale record.  Every other node is
read as before (our own, nodes of launchers that publish no record:
upstream ones, an older version, a previous process of ours, static
registrations), with one exception: a node first seen less than
``claim_grace`` (3 s) ago that no record claims yet, while some live peer
publishes one, is most likely a peer's, created since its last write, and
is not read yet (with no peer record there is no such peer: it is
read).  Quota counts it *conservatively*: as a node of our provider and
of the pool asking, costing ``bound`` (per resource, the most any
label of the provider costs; instances 1).  Once older it is read.  So
usage is never underestimated by a node that no record lists: it is
counted at least at its label's cost, or read.  (A node whose launch
refined its cost above every label's -- an instance larger than its
flavor asked -- counts at the bound for at most the grace.)  Tenant
limits need a node's tenant, so with ``tenant-resource-limits``
configured a young unclaimed node is read at once.  A claimed node the
record says is ``ready`` and allocated to nobody is read too (it may be a
spare to reuse).  The stats leader, the deleter and the orphan cleanup
leave a young unclaimed node alone for the grace (a gauge a few seconds
late; its creator deletes and cleans up its own nodes), then read it.

A launcher that dies: its record is ephemeral, so it goes when the
session expires; until then its nodes count as it last wrote them (each
only while its znode exists; nodes it created after its last write are
unclaimed: bound, then read).  Once it is gone its nodes are unclaimed and
read by whoever needs them: the fallback is the old behaviour.  A record
that cannot be parsed is skipped with one warning per version naming its
znode; its nodes are then read.

Failure story: a write that fails (ZooKeeper suspended or lost, or a
record over ZooKeeper's size limit -- ``jute.maxbuffer``, 1 MB by
default: some 5000 nodes per launcher) is logged once per outage and
retried on the next beat; the record vanishes with a lost session and is
created again on the next beat.  Meanwhile the peers
read our nodes (unclaimed), which costs reads, never correctness.
Building the record reads only our own nodes' current versions (the
cache already has most: our writes need no read back).

Threads: one ``UsageBook`` thread (``UsageBook``) writes the record every
``interval``; ``claims()`` is called from pool workers (quota, spares),
the deleter, the cleanup worker and the stats election, and only reads
the cache (a peer's changed record is read then, once per change).  First sightings of unclaimed
nodes (``Sightings``) are kept under ``_lock``.  Times come from the
injected ``clock``.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from nodepool.driver.quota import Quota
from nodepool.zk.errors import BadZnode, ZooKeeperError
from nodepool.zk.models import Node, NodeState
from nodepool.zk.paths import launcher_usage_path
from nodepool.zk.record import decode_payload

__all__ = ["ALONE", "INTERVAL", "CLAIM_GRACE", "NodeSummary", "UsageRecord",
           "Sightings", "Claims", "UsageBook"]

log = logging.getLogger(__name__)

INTERVAL = 1.0
# Three writes of a peer: a node it created is in its record by then.
CLAIM_GRACE = 3.0


@dataclass(frozen=True)
class NodeSummary:
    """What quota and the node gauges need of one node."""

    provider: str | None
    pool: str | None
    state: str | None
    type: tuple[str, ...]
    resources: Mapping[str, float]
    tenant_name: str | None = None
    allocated_to: str | None = None

    @classmethod
    def of(cls, node: Node, cost: Quota) -> "NodeSummary":
        return cls(node.provider, node.pool, node.state,
                   tuple(node.type or ()), dict(cost.values),
                   node.tenant_name, node.allocated_to or None)

    def to_doc(self) -> dict:
        doc = {"provider": self.provider, "pool": self.pool,
               "state": self.state, "type": list(self.type),
               "resources": dict(self.resources)}
        if self.tenant_name is not None:
            doc["tenant_name"] = self.tenant_name
        if self.allocated_to is not None:
            doc["allocated_to"] = self.allocated_to
        return doc

    @classmethod
    def from_doc(cls, node_id: str, doc) -> "NodeSummary":
        if not isinstance(doc, dict):
            raise ValueError(f"nodes.{node_id} is not an object")
        for key in ("provider", "pool", "state", "tenant_name",
                    "allocated_to"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise ValueError(f"nodes.{node_id}.{key} is {doc[key]!r}, "
                                 "not a string")
        labels = doc.get("type", [])
        if not isinstance(labels, list) or not all(
                isinstance(x, str) for x in labels):
            raise ValueError(f"nodes.{node_id}.type is {labels!r}, not a "
                             "list of strings")
        res = doc.get("resources", {})
        if not isinstance(res, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v) and v >= 0 for v in res.values()):
            raise ValueError(f"nodes.{node_id}.resources is {res!r}, not "
                             "an object of non-negative numbers")
        return cls(doc.get("provider"), doc.get("pool"), doc.get("state"),
                   tuple(labels), {str(k): v for k, v in res.items()},
                   doc.get("tenant_name"), doc.get("allocated_to"))

    def node(self, node_id: str) -> Node:
        """A read-only stand-in record for quota and the gauges."""
        node = Node(provider=self.provider, pool=self.pool,
                    state=self.state, type=list(self.type),
                    resources=dict(self.resources),
                    tenant_name=self.tenant_name,
                    allocated_to=self.allocated_to)
        node.id = node_id
        return node


@dataclass(frozen=True)
class UsageRecord:
    member: str
    hostname: str
    nodes: Mapping[str, NodeSummary]

    def to_json(self) -> bytes:
        return json.dumps({"hostname": self.hostname,
                           "nodes": {i: s.to_doc() for i, s in
                                     sorted(self.nodes.items())}},
                          sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, member: str, data: bytes) -> "UsageRecord":
        """Parse a peer's record; ValueError names what is wrong."""
        try:
            doc = decode_payload(data)
        except BadZnode as exc:
            raise ValueError(str(exc)) from None
        if doc is None or not isinstance(doc.get("nodes"), dict):
            raise ValueError("no 'nodes' object")
        nodes = {str(i): NodeSummary.from_doc(str(i), d)
                 for i, d in doc["nodes"].items()}
        return cls(member, str(doc.get("hostname", "")), nodes)


class Sightings:
    """When each node id was first seen unclaimed (our clock)."""

    def __init__(self, grace: float, clock: Callable[[], float]) -> None:
        self.grace = grace
        self.clock = clock
        self._first: dict[str, float] = {}
        self._lock = threading.Lock()

    def young(self, node_id: str, now: float) -> bool:
        """Unclaimed ``node_id`` first seen less than ``grace`` ago (the
        first call counts as its sighting)."""
        with self._lock:
            return now - self._first.setdefault(node_id, now) < self.grace

    def claimed(self, node_id: str) -> None:
        with self._lock:
            self._first.pop(node_id, None)

    def keep(self, exists: Callable[[str], bool]) -> None:
        with self._lock:
            for node_id in [i for i in self._first if not exists(i)]:
                del self._first[node_id]


class Claims:
    """One reader's snapshot of the peers' records.

        claims = book.claims()
        nodes = zk.iter_nodes(..., ids=claims.reads)  # claimed: unread
        nodes += claims.nodes(provider, pool, bound)  # their stand-ins
    """

    def __init__(self, records: Iterable[UsageRecord], own: set[str],
                 exists: Callable[[str], bool], sightings: Sightings,
                 now: float) -> None:
        self.own = own
        self.exists = exists
        self.sightings = sightings
        self.now = now
        self.claimed: dict[str, NodeSummary] = {}
        records = list(records)
        # Some live peer publishes a record.  Without one, an unclaimed
        # node cannot be a peer's created since its last write, so none
        # is held back (upstream launchers' nodes, or there before us).
        self.peers = bool(records)
        for record in records:
            for node_id, summary in record.nodes.items():
                if node_id not in own:
                    self.claimed[node_id] = summary
        self.young: list[str] = []

    def reads(self, node_id: str) -> bool:
        """Should this node be read?  Not when a peer claims it, nor when
        it is young and unclaimed while some live peer publishes a record
        (then it goes to ``young``).  With no peer record, a young
        unclaimed node is an upstream launcher's or was there before we
        started: read at once (quota counts it, a spare is handed out
        now, the deleter sees it) instead of after the grace."""
        if node_id in self.own:
            return True
        if node_id in self.claimed:
            self.sightings.claimed(node_id)
            return False
        if self.peers and self.sightings.young(node_id, self.now):
            self.young.append(node_id)
            return False
        return True

    def reads_ready(self, node_id: str, young: bool = False) -> bool:
        """``reads``, and also claimed nodes the record says are ``ready``
        and allocated to nobody (possible spares) and, with ``young``, the
        young unclaimed ones (for tenant limits, which count nodes by a
        tenant no stand-in knows): for callers that look at states and
        allocations."""
        if self.reads(node_id):
            return True
        summary = self.claimed.get(node_id)
        if summary is None:
            return young     # young, unclaimed, while a peer publishes
        return summary.state == NodeState.READY and not summary.allocated_to

    def nodes(self, provider: str | None = None, pool: str | None = None,
              bound: Quota | None = None) -> list[Node]:
        """Stand-ins for the claimed nodes that exist (of ``provider``, if
        given) and, with ``bound``, for the young unclaimed ones seen by
        ``reads`` (as nodes of ``provider`` and ``pool`` costing
        ``bound``)."""
        out = [s.node(i) for i, s in self.claimed.items()
               if (provider is None or s.provider == provider)
               and self.exists(i)]
        if bound is not None:
            stand_in = NodeSummary(provider, pool, None, (),
                                   dict(bound.values))
            out += [stand_in.node(i) for i in self.young
                    if self.exists(i)]
        return out


class UsageBook:
    """This launcher's record and its readers' snapshots.

    ``summarize()`` returns the summaries of our nodes (the launcher
    passes one built from its caches and providers' costs); ``zk`` is the
    ``ZooKeeper`` facade (``put_usage``, ``usage_records``,
    ``created_node_ids``, ``node_may_exist``)."""

    def __init__(self, zk, summarize: Callable[[set[str]],
                                               Mapping[str, NodeSummary]],
                 hostname: str | None = None, *,
                 interval: float = INTERVAL, grace: float = CLAIM_GRACE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.zk = zk
        self.summarize = summarize
        self.hostname = hostname or socket.gethostname()
        self.member = f"{self.hostname}-{uuid.uuid4().hex}"
        self.path = launcher_usage_path(self.member)
        self.interval = interval
        self.clock = clock
        self.sightings = Sightings(grace, clock)
        self._written: bytes | None = None
        # node id -> (summary, its encoded part) of the last beat
        self._encoded: dict[str, tuple[NodeSummary, str]] = {}
        self._version = -1
        self._failing = False
        self._bad: dict[str, int] = {}
        # member -> (mzxid, record) of the last parse of each peer's
        # record (readers ask on every pass; a record changes each second
        # at most).  Replaced whole, never changed in place.
        self._parsed: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the owner's side ---------------------------------------------------
    def beat(self) -> bool:
        """Write our record if it changed; True when written."""
        own = self.zk.created_node_ids()
        data = self._encode(dict(self.summarize(own)))
        if data == self._written:
            return False
        try:
            stat = self.zk.put_usage(self.member, data, self._version)
        except ZooKeeperError as exc:
            if not self._failing:
                log.warning("Usage record %s: write failed (%s); retrying "
                            "every %.3g s", self.path, exc, self.interval)
            self._failing = True
            self._version = -1
            return False
        if self._failing:
            log.info("Usage record %s: written again", self.path)
        self._failing = False
        self._written = data
        self._version = stat.version if stat is not None else -1
        return True

    def _encode(self, nodes: Mapping[str, NodeSummary]) -> bytes:
        """``UsageRecord.to_json`` of our record, byte for byte, with each
        node's part kept from the last beat while its summary is the same
        (a beat re-encoded every node: with 1000 nodes, most of its
        cost)."""
        parts, encoded = [], {}
        for node_id in sorted(nodes):
            summary = nodes[node_id]
            known = self._encoded.get(node_id)
            if known is None or known[0] != summary:
                known = (summary, json.dumps(node_id) + ": " + json.dumps(
                    summary.to_doc(), sort_keys=True))
            encoded[node_id] = known
            parts.append(known[1])
        self._encoded = encoded
        return ('{"hostname": ' + json.dumps(self.hostname)
                + ', "nodes": {' + ", ".join(parts) + "}}").encode("utf-8")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="UsageBook",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:   # never stop beating
                log.exception("Usage record %s: beat failed", self.path)

    def stop(self) -> None:
        """Stop beating and delete our record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.zk.delete_usage(self.member)
        except ZooKeeperError as exc:
            log.warning("Usage record %s: could not delete (%s); it goes "
                        "with the session", self.path, exc)

    # -- the readers' side --------------------------------------------------
    def records(self) -> list[UsageRecord]:
        """The peers' records that parse (the others are skipped, one
        warning per version)."""
        out, parsed = [], {}
        for member, data, stat in self.zk.usage_records(mine=self.member):
            mzxid = stat.mzxid if stat is not None else None
            known = self._parsed.get(member)
            if known is not None and known[0] == mzxid:
                parsed[member] = known     # parsed once per version
                out.append(known[1])
                continue
            try:
                record = UsageRecord.from_json(member, data)
            except ValueError as exc:
                if self._bad.get(member) != mzxid:
                    self._bad[member] = mzxid
                    log.warning("Usage record %s: skipped (its nodes are "
                                "read instead): %s",
                                launcher_usage_path(member), exc)
                continue
            self._bad.pop(member, None)
            parsed[member] = (mzxid, record)
            out.append(record)
        self._parsed = parsed
        return out

    def claims(self) -> Claims:
        """A snapshot for one quota recount, gauge or deleter pass."""
        self.sightings.keep(self.zk.node_may_exist)
        return Claims(self.records(), self.zk.created_node_ids(),
                      self.zk.node_may_exist, self.sightings, self.clock())


class Alone:
    """A ``UsageBook`` stand-in with no peers: every node is read (tests
    of one pool, a daemon without ZooKeeper)."""

    def claims(self) -> Claims:
        return Claims((), set(), lambda node_id: True,
                      Sightings(0.0, time.monotonic), 0.0)


ALONE = Alone()
