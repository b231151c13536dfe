"""What the fault suite watches: ZooKeeper allocations and the cloud itself.

Both observers look from outside the launcher, so a bug in the launcher's
own bookkeeping cannot hide what it did:

- :class:`NodeWatch` records, from a data watch set on every node as it
  appears (raw kazoo, JSON read by hand), each value ``allocated_to`` ever
  took, and a break (None) where it was seen unallocated.  A node that
  moves straight from request A to request B while A is still an open
  (not failed) request was handed out twice.  One that was deallocated in
  between was given back (a lost request's reset deallocates the nodes
  its dead handler had gathered, and A is served with other nodes); the
  two fulfilled requests that list one node still count.
- :func:`cloud_instances` asks EC2 (``DescribeInstances`` through the local
  AWS) for every instance carrying our provider tag, terminated ones
  included: two *live* instances for one node id are a duplicated launch
  (a launch retry leaves the failed attempt's instance terminated), and a
  live instance with no node znode after cleanup is a leak.

Batch-created instances carry their node id in shared batch tags (one
RunInstances call cannot tag instances differently); the node id is read
back with the same rule EC2 users would apply: the launch index into the
``nodepool_batch_nodes_*`` list.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

from kazoo.exceptions import NoNodeError

NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"
LIVE_STATES = ("pending", "running", "stopping", "stopped")


class NodeWatch:
    """Every value of ``allocated_to`` each node ever showed, in order."""

    def __init__(self, client):
        self.client = client
        self.allocs: dict[str, list[str | None]] = defaultdict(list)
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        client.ensure_path(NODES)
        client.ChildrenWatch(NODES, self._children)

    def _children(self, names) -> None:
        for name in names:
            with self._lock:
                if name in self._watched:
                    continue
                self._watched.add(name)
            self.client.DataWatch(f"{NODES}/{name}",
                                  lambda d, s, e=None, n=name:
                                  self._data(n, d))

    def _data(self, name: str, data) -> None:
        if not data:
            return
        try:
            rid = json.loads(data).get("allocated_to")
        except ValueError:
            return
        with self._lock:
            seen = self.allocs[name]
            if rid and (not seen or seen[-1] != rid):
                seen.append(rid)
            elif not rid and seen and seen[-1] is not None:
                seen.append(None)     # deallocated

    def moves(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return moves_of(self.allocs)


def moves_of(allocs: dict[str, list[str | None]]
             ) -> list[tuple[str, str, str]]:
    """(node, from request, to request) for every re-allocation without a
    deallocation (None) in between."""
    out = []
    for name, rids in allocs.items():
        out += [(name, a, b) for a, b in zip(rids, rids[1:])
                if a is not None and b is not None]
    return out


def allocated_twice(moves: list[tuple[str, str, str]],
                    final: dict[str, dict]) -> list[str]:
    """Nodes given to two requests that both stayed open.

    ``final`` is request id → its data at the end of the burst (before
    Zuul deletes anything).  Requests are never deleted during a burst, so
    a request A that ends anything but ``failed`` still existed, open,
    when its node moved on to B.  A node listed by two fulfilled requests
    counts too.
    """
    bad = set()
    for node, a, _b in moves:
        if (final.get(a) or {}).get("state") != "failed":
            bad.add(f"{node}:{a}")
    owners: dict[str, set[str]] = defaultdict(set)
    for rid, req in final.items():
        if req.get("state") == "fulfilled":
            for node in req.get("nodes") or []:
                owners[node].add(rid)
    bad |= {f"{n}:{','.join(sorted(r))}" for n, r in owners.items()
            if len(r) > 1}
    return sorted(bad)


def node_id_of(record: dict) -> str | None:
    tags = {t["Key"]: t["Value"] for t in record.get("Tags") or []}
    if tags.get("nodepool_node_id"):
        return tags["nodepool_node_id"]
    ids: list[str] = []
    index = 0
    while (value := tags.get(f"nodepool_batch_nodes_{index}")) is not None:
        ids += [x for x in value.split(",") if x]
        index += 1
    launch = record.get("AmiLaunchIndex")
    if launch is not None and 0 <= launch < len(ids):
        return ids[launch]
    return None


def cloud_instances(ec2, provider: str, attempts: int = 5) -> list[dict]:
    """Every instance tagged with our provider (any state).  The local
    cloud may answer one call with a 5xx: the observer asks again rather
    than end the suite."""
    for attempt in range(1, attempts + 1):
        try:
            out = []
            for page in ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "tag:nodepool_provider_name",
                              "Values": [provider]}]):
                for reservation in page.get("Reservations", []):
                    for record in reservation.get("Instances", []):
                        out.append({"id": record["InstanceId"],
                                    "state": record["State"]["Name"],
                                    "node": node_id_of(record)})
            return out
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)   # back-off between attempts
    return []


def duplicated(instances: list[dict]) -> dict[str, list[str]]:
    """node id → its instances, where a node has more than one."""
    by_node: dict[str, list[str]] = defaultdict(list)
    for inst in instances:
        if inst["node"]:
            by_node[inst["node"]].append(inst["id"])
    return {n: ids for n, ids in by_node.items() if len(ids) > 1}


def leaked(instances: list[dict], client) -> list[dict]:
    """Live instances whose node znode does not exist."""
    out = []
    for inst in instances:
        if inst["state"] not in LIVE_STATES:
            continue
        if inst["node"] is None or client.exists(
                f"{NODES}/{inst['node']}") is None:
            out.append(inst)
    return out


def children(client, path: str) -> list[str]:
    try:
        return client.get_children(path)
    except NoNodeError:
        return []
