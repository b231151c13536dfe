"""Which node a batch-created instance belongs to, written on the instance.

One RunInstances call with MaxCount=N gives every instance the same
TagSpecifications, so the per-node tags (``nodepool_node_id``, ``Name``)
can only be added afterwards with CreateTags -- one call per instance,
paced by the rate limiter, possibly long after the instance exists, and
never at all if the launcher dies in between.  Leak cleanup must not
mistake such an instance for a leak (it would delete a node in use), and
must still find it if its node is gone.

So the shared tags carry the whole mapping: ``nodepool_batch_id`` (the
call's ClientToken) and the node ids of the batch in call order, split over
``nodepool_batch_nodes_<k>`` tags of at most 255 characters.  EC2 numbers
the instances of one call by ``AmiLaunchIndex`` (0..N-1); instance ``i`` is
the i-th node.  With fewer instances than asked (partial fulfilment), the
last nodes simply have none.  ``node_id_of`` reads an instance's node from
its own tags, so the answer survives a launcher restart, and the late
per-node tags are cosmetic.
"""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["BATCH_ID", "BATCH_NODES", "encode", "decode", "node_id_of"]

BATCH_ID = "nodepool_batch_id"
BATCH_NODES = "nodepool_batch_nodes_"
MAX_VALUE = 255   # EC2 tag values are at most 256 characters


def encode(batch_id: str, node_ids: Sequence[str]) -> dict[str, str]:
    """The shared tags naming the nodes of one batch, in launch order."""
    tags = {BATCH_ID: batch_id}
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
    """An instance's node id: its own tag, else its slot in the batch."""
    node_id = tags.get("nodepool_node_id")
    if node_id:
        return node_id
    if launch_index is None or BATCH_ID not in tags:
        return None
    ids = decode(tags)
    if 0 <= launch_index < len(ids):
        return ids[launch_index]
    return None
