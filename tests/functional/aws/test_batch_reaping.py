"""Batched instances are reapable by upstream's leak rule (Parity item 11).

A real ``nodepool-launcher -f`` child with batched creates, RunInstances
latency 1.5 s and a low rate (so launches pile up into multi-instance
calls), gets a burst of 30 single-node requests (three waves of 10, so
there are three batches) and is killed with SIGKILL about a second into
it, while its calls are in flight.  The
proxy completes those calls after the client is gone: the cloud then has
batch-created instances whose ids never reached ZooKeeper and whose
per-node tags were never written.

Checked for every instance in the local AWS:

- it carries ``nodepool_provider_name`` and a ``nodepool_node_id`` from
  its creation (the batch's anchor for a sibling);

then either (parametrised):

- ``upstream``: upstream Nodepool takes over for good.  The test applies
  its rules itself: the dead launcher's unlocked ``init``/``building``
  nodes are deleted as upstream's cleanup deletes them (the instance of
  a recorded ``external_id``, then the znode), then two leak passes: an
  instance of the provider is reaped iff its raw ``nodepool_node_id`` is
  not a node of the provider on both passes.  Every instance whose id was
  lost with the launcher is reaped, and nothing is left but instances of
  nodes that became ready before the kill (none, unless a call returned
  in time on a slow machine).
- ``ours``: our launcher restarts; every request is fulfilled (the dead
  launcher's are reset and taken again), and once the nodes are released
  no instance is left and no node ever had two instances.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from nodepool.driver.aws.describe import tags_of
from tests.functional.aws.helpers import KILLABLE, node_data, tags
from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_processes import (
    NODES, LauncherProcess, children, play_zuul, wait_pools)

pytestmark = pytest.mark.functional

BURST = 30


def write_config(env, aws) -> str:
    return env.write_config([aws.provider(
        rate=4, pool_extra={"max-servers": 40},
        **{"batch-creates": True})], **KILLABLE)


def all_nodes(client) -> dict[str, dict]:
    out = {}
    for node_id in children(client, NODES):
        data = node_data(client, node_id)
        if data:
            out[node_id] = data
    return out


def locked(client, node_id: str) -> bool:
    return bool(children(client, f"{NODES}/{node_id}/lock"))


def instance_of(external) -> str | None:
    if isinstance(external, dict):
        return external.get("instance")
    return external


def upstream_deletes_dead_nodes(aws, client) -> list[str]:
    """Upstream's cleanup of unlocked init/building nodes: terminate the
    recorded instance (if any), then remove the znode."""
    gone = []
    for node_id, node in all_nodes(client).items():
        if node.get("state") not in ("init", "building"):
            continue
        if locked(client, node_id):
            continue
        iid = instance_of(node.get("external_id"))
        if iid:
            aws.ec2().terminate_instances(InstanceIds=[iid])
        client.delete(f"{NODES}/{node_id}", recursive=True)
        gone.append(node_id)
    return gone


def upstream_leak_pass(aws, client, provider: str,
                       suspects: set[str]) -> tuple[set[str], list[str]]:
    """One pass of upstream's rule; (new suspects, instances reaped)."""
    known = {n for n, d in all_nodes(client).items()
             if d.get("provider") == provider}
    newly, reaped = set(), []
    for record in aws.instances():
        metadata = tags(record)
        if metadata.get("nodepool_provider_name") != provider:
            continue
        node_id = metadata.get("nodepool_node_id")
        if node_id and node_id not in known:
            newly.add(node_id)
            if node_id in suspects:
                aws.ec2().terminate_instances(
                    InstanceIds=[record["InstanceId"]])
                reaped.append(record["InstanceId"])
    return newly, reaped


def kill_mid_burst(env, aws, tmp_path):
    """30 requests in three waves of 10, each let out once the previous
    one's RunInstances is in flight (so there are three batches, each with
    an anchor and siblings); SIGKILL once the last call is in flight,
    about a second into the burst."""
    aws.local.configure(run_instances_latency=1.5)
    config = write_config(env, aws)
    client, zuul = env.client, env.zuul
    proc = LauncherProcess(config, str(tmp_path / "killed.log"))
    rids = []
    try:
        wait_pools(client, 1, [proc])
        for wave in range(3):
            rids += [zuul.submit(["small"]) for _ in range(BURST // 3)]
            wait_for(lambda: aws.local.stats()["in_flight"].get(
                "RunInstances", 0) > wave, timeout=20,
                what=f"RunInstances of wave {wave + 1} in flight")
        proc.proc.kill()
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
    aws.local.configure(run_instances_latency=0.05)
    # The killed calls complete: instances exist that ZooKeeper never saw.
    wait_for(lambda: not aws.local.stats()["in_flight"].get("RunInstances"),
             timeout=20, what="killed RunInstances calls completed")
    return rids


@pytest.mark.parametrize("successor", ["upstream", "ours"])
def test_kill9_mid_batch_every_instance_reapable(env, aws, tmp_path,
                                                 successor):
    rids = kill_mid_burst(env, aws, tmp_path)
    client, zuul = env.client, env.zuul
    instances = aws.instances()
    run = aws.local.stats()["run_instances"]
    assert sum(1 for c in run["instances"] if c["launched"] > 1) >= 2, \
        "fewer than two calls started a batch of several instances"
    assert len(instances) >= BURST // 3, len(instances)
    for record in instances:
        metadata = tags(record)
        assert metadata.get("nodepool_provider_name") == "aws", metadata
        assert metadata.get("nodepool_node_id"), metadata
    nodes = all_nodes(client)
    recorded = {instance_of(d.get("external_id")) for d in nodes.values()}
    cut_short = [r for r in instances if r["InstanceId"] not in recorded]
    assert [r for r in cut_short if r.get("AmiLaunchIndex", 0) > 0], \
        "no sibling's instance id was lost with the launcher"

    if successor == "upstream":
        dead = {n for n, d in nodes.items()
                if d.get("state") in ("init", "building")}
        wait_for(lambda: not any(locked(client, n) for n in dead),
                 timeout=30, what="the dead launcher's locks expired")
        upstream_deletes_dead_nodes(aws, client)
        suspects, reaped = upstream_leak_pass(aws, client, "aws", set())
        assert not reaped                  # the first pass only suspects
        _, reaped = upstream_leak_pass(aws, client, "aws", suspects)
        assert {r["InstanceId"] for r in cut_short} <= set(reaped)
        # Left: only instances of nodes that became ready before the kill
        # (a call that returned in time); their nodes are in use, not lost.
        ready = {n for n, d in all_nodes(client).items()
                 if d.get("state") == "ready"}
        left = {r["InstanceId"]: tags_of(r).get("nodepool_node_id")
                for r in aws.instances()}
        assert set(left.values()) <= ready, \
            f"instances upstream would never reap: {left}"
        return

    env.start_launcher(cleanup_interval=1.0)
    got = play_zuul(zuul, rids, timeout=120)
    assert set(got) == set(rids)

    def nothing_left():
        return not children(client, NODES) and not aws.instances()
    wait_for(nothing_left, timeout=90,
             what="every node released and every instance terminated")
    # Each instance ever started, terminated ones too, by its true node.
    pages = aws.ec2().get_paginator("describe_instances").paginate()
    per_node = Counter(tags_of(record).get("nodepool_node_id")
                       for page in pages
                       for reservation in page["Reservations"]
                       for record in reservation["Instances"])
    assert None not in per_node, "an instance without a node"
    twice = {n: c for n, c in per_node.items() if c > 1}
    assert not twice, f"nodes with more than one instance: {twice}"
    assert set(per_node) >= set(got.values())
