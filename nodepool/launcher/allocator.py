"""What a pool gives its request handlers: spares, reservations, launches.

``PoolAllocator`` is the pool worker's side of the ``Allocator`` protocol
that ``nodepool.launcher.handler`` declares.  A handler serves one request
and needs, from its pool, exactly this: the pool's ready spares of a label,
whether the label's offering is unavailable, a quota reservation for one
more node (and a way to commit or release it), the "reclaim a ready node
at quota" step, the pool's zones, a new node record carrying the pool's
fields, and a way to hand a launch to the provider.  Keeping that in one
small object (instead of handing the handler the whole worker and, through
it, the manager and the adapter) is what lets a handler be driven in a unit
test by a fake allocator, and keeps the handler from importing the pool
worker (which imports the handler).

Threads: called by the pool worker's I/O threads (one action at a time per
handler, several handlers at once).  Quota is claimed under the
``PoolQuota`` lock; the spares come from the worker's per-pass cache
(guarded by the worker's lock); ``launch`` only hands work to the
provider's loop.

Failure story: ``reclaim_ready_node`` locks, writes and deletes one node;
ZooKeeper trouble there raises to the handler's action, which is retried
(the reclaim clock starts only once a node was handed to the deleter).
``new_node`` reads the latest image upload from the ZooKeeper cache; a
missing upload gives a node without an image id, and the launch fails
as a cloud launch would.  Everything else is in-memory.
"""

from __future__ import annotations

import logging
from typing import Callable

from nodepool.launcher.quota import PoolQuota, Verdict
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState


def lock_spare(zk, node: Node) -> Node | None:
    """A locked copy of the cached ``node`` if, once locked (the lock
    re-reads it), it is still READY and allocated to nobody; None, holding
    nothing, when someone else holds it or it changed meanwhile.

    The caller owns the lock (``zk.unlock_node`` lets go of it).  Raises
    what ``lock_node`` raises but ``LockError`` (ZooKeeper trouble).
    """
    if zk.is_locked(node):
        return None
    node = node.clone()     # the cache's records are read-only
    try:
        zk.lock_node(node, blocking=False)
    except zk_errors.LockError:
        return None
    if node.state != NodeState.READY or node.allocated_to:
        zk.unlock_node(node)
        return None
    return node


class PoolAllocator:
    """One pool's spares, reservations and launches (see module doc)."""

    def __init__(self, pool, provider_name: str, launcher_id: str, zk,
                 manager, quota: PoolQuota,
                 spares: Callable[[str], list[Node]]):
        self.pool = pool
        self.provider_name = provider_name
        self.launcher_id = launcher_id
        self.zk = zk
        self.manager = manager
        self.quota = quota
        self._spares = spares
        self.log = logging.getLogger(
            f"nodepool.PoolWorker.{provider_name}-{pool.name}")

    # -- what the pool can serve -------------------------------------------
    @property
    def launches_nodes(self) -> bool:
        """False for a driver that only hands out existing nodes."""
        return self.manager.launches_nodes

    @property
    def installation(self) -> str | None:
        return self.manager.adapter.installation

    def spares(self, label_name: str) -> list[Node]:
        return self._spares(label_name)

    def lock_spare(self, node: Node) -> Node | None:
        return lock_spare(self.zk, node)

    def unavailable(self, label_name: str) -> str | None:
        """Why ``label_name``'s offering cannot launch now (None: it can)."""
        record = self.manager.offering_unavailable(
            self.pool, self.pool.labels[label_name])
        return None if record is None else record.describe()

    def zones(self):
        return self.manager.adapter.availability_zones(self.pool)

    # -- quota ---------------------------------------------------------------
    def reserve(self, label_name: str) -> Verdict:
        label = self.pool.labels[label_name]
        return self.quota.reserve(self.quota.label_cost(label))

    def commit(self, reservation, node: Node) -> None:
        self.quota.commit(reservation, node)

    def release(self, reservation) -> None:
        self.quota.release(reservation)

    def reclaim_ready_node(self) -> None:
        """At quota: delete the oldest unallocated READY node of this pool
        (at most one per ``PoolQuota.reclaim_interval``)."""
        for node in self.quota.reclaim_candidates():
            node = lock_spare(self.zk, node)
            if node is None:
                continue
            self.log.info("At quota: deleting unused ready node %s", node.id)
            node.set_state(NodeState.DELETING)
            self.zk.store_node(node)
            self.manager.delete_node(node)
            self.quota.reclaimed()
            return

    # -- launches ------------------------------------------------------------
    def new_node(self, label_name: str) -> tuple[Node, str | None]:
        """An INIT node record with the pool's fields for ``label_name``
        (not stored), and the cloud image id to launch it from."""
        label = self.pool.labels[label_name]
        node = Node()
        node.state = NodeState.INIT
        node.type = [label_name]
        node.provider = self.provider_name
        node.pool = self.pool.name
        node.launcher = self.launcher_id
        node.attributes = (dict(self.pool.node_attributes)
                           if self.pool.node_attributes else None)
        node.resources = self.quota.label_cost(label).finite() or None
        node.image_id, image_external_id = self.image_ids(label)
        image = label.image
        node.connection_type = image.connection_type if image else "ssh"
        node.connection_port = image.connection_port if image else 22
        if image is not None:
            # As upstream, the image's connection fields are on the node
            # from the start of its launch (set again once it runs).
            node.username = image.username
            node.python_path = image.python_path
            node.shell_type = image.shell_type
        return node, image_external_id

    def launch(self, node: Node, label_name: str, info,
               image_external_id: str | None):
        """Hand the locked BUILDING ``node`` to the provider's loop."""
        return self.manager.launch(node, self.pool,
                                   self.pool.labels[label_name], info,
                                   image_external_id)

    def image_ids(self, label) -> tuple[str | None, str | None]:
        """(node ``image_id``, cloud image id for the launch).

        For a diskimage label: the upload record's path (what upstream
        writes to ``image_id``) and the upload's cloud id; for a
        cloud-image label: its name, and None (the adapter resolves it).
        """
        if label.diskimage:
            upload = self.zk.latest_ready_upload(label.diskimage,
                                                 self.provider_name)
            if upload is None:
                return None, None
            return upload.path, upload.external_id
        return label.cloud_image, None
