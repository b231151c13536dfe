"""min-ready: keep ``min-ready`` unallocated READY nodes per label.

Run by the launcher's main loop (zookeeper.md §10).  The requests it creates
are ephemeral (they vanish with our session), priority ``900``, requestor
``NodePool:min-ready``, ``reuse`` false, one label each.  Once fulfilled,
their nodes are unallocated again and the request is deleted, so the nodes
become spares any request can reuse.

Threads: none of its own; ``run_once`` runs on the launcher's main loop
(``NodePool``), which owns ``outstanding``.

Failure story: a ZooKeeper error in a pass propagates to the main loop,
which logs it and calls again on its next pass; requests already submitted
are remembered and collected then.  A request that vanished (our session
ended: they are ephemeral) is forgotten and asked for again if still
needed.  A node that cannot be locked to release it is logged and left
allocated to the deleted request; the deleted-node worker frees nodes of
vanished requests.
"""

from __future__ import annotations

import logging
import uuid
from typing import Iterable, Protocol

from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeRequest, NodeState, RequestState

REQUESTOR = "NodePool:min-ready"
PRIORITY = "900"


class Store(Protocol):
    """The ZooKeeper calls min-ready makes (``nodepool.zk.ZooKeeper``)."""

    def iter_nodes(self, cached: bool = True,
                   shared: bool = False) -> Iterable[Node]: ...

    def get_node(self, node_id: str) -> Node | None: ...

    def lock_node(self, node: Node, blocking: bool = True,
                  timeout: float | None = None) -> None:
        """Lock ``node`` and re-read it (LockError, NotFound)."""

    def unlock_node(self, node: Node) -> None: ...

    def store_node(self, node: Node) -> None: ...

    def submit_request(self, request: NodeRequest, priority: str,
                       ephemeral: bool) -> str: ...    # sets request.id

    def get_request(self, request_id: str,
                    cached: bool = False) -> NodeRequest | None: ...

    def delete_request(self, request: NodeRequest) -> None: ...


class Daemon(Protocol):
    """What min-ready uses of its daemon (``Launcher``): the store, the
    labels of the current config, and the pool workers (only their
    ``supported_labels``: a label no pool serves is never asked for)."""

    zk: Store
    config: object      # ``labels``: name -> Label

    def pool_workers(self) -> dict: ...


class MinReady:
    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.log = logging.getLogger("nodepool.MinReady")
        self.outstanding: dict[str, NodeRequest] = {}   # id -> request

    def run_once(self) -> None:
        zk = self.daemon.zk
        self._collect(zk)
        labels = self.daemon.config.labels
        wanted = {n: l.min_ready for n, l in labels.items()
                  if l.min_ready > 0}
        if not wanted:
            return
        pending = {r.node_types[0] for r in self.outstanding.values()}
        servable = set()
        for worker in self.daemon.pool_workers().values():
            servable |= worker.supported_labels
        spare: dict[str, int] = {}
        for node in zk.iter_nodes(cached=True, shared=True):
            if node.state == NodeState.READY and not node.allocated_to:
                for label in node.type or []:
                    spare[label] = spare.get(label, 0) + 1
        for label, count in wanted.items():
            if label in pending or label not in servable:
                continue
            for _ in range(count - spare.get(label, 0)):
                self._submit(zk, label)

    def _submit(self, zk, label: str) -> None:
        request = NodeRequest()
        request.state = RequestState.REQUESTED
        request.node_types = [label]
        request.requestor = REQUESTOR
        request.reuse = False
        request.event_id = uuid.uuid4().hex
        request.set_state(RequestState.REQUESTED)
        request.created_time = request.state_time
        zk.submit_request(request, priority=PRIORITY, ephemeral=True)
        self.outstanding[request.id] = request
        self.log.info("Requested a min-ready node of label %s (request %s)",
                      label, request.id)

    def _collect(self, zk) -> None:
        for request_id in list(self.outstanding):
            request = zk.get_request(request_id, cached=True)
            if request is None:
                request = zk.get_request(request_id)
            if request is None:
                del self.outstanding[request_id]
                continue
            if request.state == RequestState.FULFILLED:
                self._release_nodes(zk, request)
            elif request.state != RequestState.FAILED:
                continue
            try:
                zk.delete_request(request)
            except zk_errors.NotFound:
                pass
            del self.outstanding[request_id]

    def _release_nodes(self, zk, request) -> None:
        for node_id in request.nodes:
            node = zk.get_node(node_id)
            if node is None or node.allocated_to != request.id:
                continue
            try:
                zk.lock_node(node, blocking=True, timeout=5)
            except (zk_errors.LockError, zk_errors.NotFound):
                self.log.warning("Could not lock min-ready node %s",
                                 node_id)
                continue
            try:
                if node.allocated_to == request.id:
                    node.allocated_to = None
                    zk.store_node(node)
            finally:
                zk.unlock_node(node)
