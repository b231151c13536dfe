"""Which node a batch-created instance belongs to, written on the instance.

One RunInstances call with MaxCount=N gives every instance the same
TagSpecifications, so the per-node tags (``nodepool_node_id``, ``Name``)
can only be added afterwards with CreateTags -- one call per instance,
paced by the rate limiter, possibly long after the instance exists, and
never at all if the launcher dies in between.  Leak cleanup must not
mistake such an instance for a leak (it would delete a node in use), and
must still find it if its node is gone -- ours, and upstream Nodepool's,
which deletes an instance only when it carries a ``nodepool_node_id``
that is not a node of the provider (seen so on two passes).

So the shared tags carry:

- the *anchor*: ``nodepool_node_id`` set to the batch's first node id.
  Every instance therefore names a node from its first moment, and
  upstream's rule reaps the whole batch once the anchor's node is gone;
- the whole mapping: ``nodepool_batch_id`` (the call's ClientToken) and
  the node ids of the batch in call order, split over
  ``nodepool_batch_nodes_<k>`` tags of at most 255 characters.  EC2
  numbers the instances of one call by ``AmiLaunchIndex`` (0..N-1);
  instance ``i`` is the i-th node (so instance 0 is the anchor's own).
  With fewer instances than asked (partial fulfilment), the last nodes
  simply have none.

``node_id_of`` reads an instance's true node from its own tags, so the
answer survives a launcher restart: a ``nodepool_node_id`` other than the
anchor was written by the tagger for this very instance and wins;
otherwise the batch mapping wins over the anchor.  Ours thus never
confuses a sibling with the anchor (crash recovery, leak cleanup and
``list_instances`` all read ``node_id_of``), and the late per-node tags
only matter to upstream and to people reading the console.

Residual windows, until the tagger (``tagger``; siblings first) has given
each sibling its own ``nodepool_node_id``:

- if our launcher is dead for good and the anchor's node outlives its
  siblings' nodes (the anchor became READY and is in use), upstream's
  cleanup leaves the siblings running until the anchor's node is gone;
- if upstream Nodepool cleans up this provider while ours runs (a mixed
  deployment) and the anchor's node is deleted while a sibling is still
  untagged -- the tagger is behind by more than the anchor node's whole
  life plus a leak-cleanup interval -- upstream may reap that sibling
  although its node exists.  The tagger retries a failed tag call a few
  times; a sibling it gives up on stays exposed this way.
"""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["BATCH_ID", "BATCH_NODES", "NODE_ID", "encode", "decode",
           "node_id_of"]

NODE_ID = "nodepool_node_id"
BATCH_ID = "nodepool_batch_id"
BATCH_NODES = "nodepool_batch_nodes_"
MAX_VALUE = 255   # EC2 tag values are at most 256 characters


def encode(batch_id: str, node_ids: Sequence[str]) -> dict[str, str]:
    """The shared tags naming the nodes of one batch, in launch order,
    with the anchor (the first node) as ``nodepool_node_id``."""
    if not node_ids:
        raise ValueError("a batch needs at least one node")
    tags = {NODE_ID: node_ids[0], BATCH_ID: batch_id}
    chunk: list[str] = []
    index = 0
    for node_id in node_ids:
        if "," in node_id or len(node_id) > MAX_VALUE:
            raise ValueError(f"node id {node_id!r} can not be batch-tagged")
        if chunk and len(",".join(chunk + [node_id])) > MAX_VALUE:
            tags[f"{BATCH_NODES}{index}"] = ",".join(chunk)
            index += 1
            chunk = []
        chunk.append(node_id)
    if chunk:
        tags[f"{BATCH_NODES}{index}"] = ",".join(chunk)
    return tags


def decode(tags: Mapping[str, str]) -> list[str]:
    """The node ids of a batch from its shared tags ([] if not batched)."""
    ids: list[str] = []
    index = 0
    while (value := tags.get(f"{BATCH_NODES}{index}")) is not None:
        ids.extend(x for x in value.split(",") if x)
        index += 1
    return ids


def node_id_of(tags: Mapping[str, str], launch_index: int | None
               ) -> str | None:
    """An instance's true node id (see the module docstring).

    Not batched: its ``nodepool_node_id``.  Batched: a
    ``nodepool_node_id`` other than the anchor (the tagger's) wins, else
    the node of its launch index; an instance the mapping cannot place
    (no or a foreign index) has no node.
    """
    own = tags.get(NODE_ID) or None
    if BATCH_ID not in tags:
        return own
    ids = decode(tags)
    if own is not None and (not ids or own != ids[0]):
        return own
    if launch_index is None or not 0 <= launch_index < len(ids):
        return None
    return ids[launch_index]
