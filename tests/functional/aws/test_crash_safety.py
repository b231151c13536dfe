"""kill -9 of a launcher process mid-create on the local AWS (issue 8, 1).

A real ``nodepool-launcher -f`` child launches against ``LocalAWS`` with a
RunInstances latency of 2 s and is killed (SIGKILL) while its calls are in
flight.  The proxy still completes those calls after the client is gone,
so the cloud gets instances whose ids never reached ZooKeeper -- the
window the create intent exists for.  A fresh launcher (in-process, with
a 1 s cleanup interval so the lost-request reset comes quickly) must then:

- fulfil every request (the dead launcher's pending ones are taken again);
- delete the dead launcher's ``building`` nodes together with every
  instance tagged with their ids (found through ``find_instances``): the
  instance is terminated before its znode goes, whereas the two-pass leak
  cleanup could only act after the znode is gone;
- leave no instance behind once the nodes are released, and never have
  given one node two instances or two requests.

The launch path is run with batched creates and with lone creates (which
pass the node's recorded token as ClientToken).  moto does not deduplicate
ClientToken, so the "same token, same instance" half of the story is
covered by the fake cloud (tests/functional/launcher/test_crash_safety.py).
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from nodepool.driver.aws.describe import tags_of
from tests.functional.aws.helpers import KILLABLE, node_data
from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_processes import (
    NODES, LauncherProcess, NodeWatch, children, play_zuul, wait_pools)

pytestmark = pytest.mark.functional


def write_config(env, aws, batch: bool) -> str:
    return env.write_config([aws.provider(
        pool_extra={"max-servers": 20}, **{"batch-creates": batch})],
        **KILLABLE)


def all_instances(aws) -> list[dict]:
    """Every instance record, terminated ones included."""
    pages = aws.ec2().get_paginator("describe_instances").paginate()
    return [i for page in pages for r in page["Reservations"]
            for i in r["Instances"]]


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "lone"])
def test_kill9_mid_create_then_restart(env, aws, tmp_path, batch):
    aws.local.configure(run_instances_latency=2.0)
    config = write_config(env, aws, batch)
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    proc = LauncherProcess(config, str(tmp_path / "killed.log"))
    try:
        wait_pools(client, 1, [proc])
        rids = [zuul.submit(["small"]) for _ in range(6)]

        def creates_in_flight():
            intents = [n for n in children(client, NODES)
                       if (node_data(client, n).get("driver_data") or {})
                       .get("create")]
            running = aws.local.stats()["in_flight"].get("RunInstances", 0)
            return len(intents) >= 3 and running >= 1 and intents
        wait_for(creates_in_flight, timeout=20,
                 what="create intents stored, RunInstances in flight")
        proc.proc.kill()
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
    dead = {n for n in children(client, NODES)
            if node_data(client, n).get("state") == "building"}
    assert dead, "no launch was cut short"
    unrecorded = {n for n in dead if not node_data(client, n)["external_id"]}
    assert unrecorded, "every id was stored: the kill came too late"
    pending = [r for r in rids
               if (zuul.get_request(r) or {}).get("state") == "pending"]
    assert pending, "no request was pending on the dead launcher"

    aws.local.configure(run_instances_latency=0.05)
    # The killed calls complete: instances exist that ZooKeeper never saw.
    wait_for(lambda: not aws.local.stats()["in_flight"].get("RunInstances"),
             timeout=10, what="killed RunInstances calls completed")
    orphans = {tags_of(i).get("nodepool_node_id")
               for i in aws.instances()} & unrecorded
    assert orphans, "no instance outlived the launcher's knowledge of it"

    env.start_launcher(cleanup_interval=1.0)
    for node_id in dead:
        zuul.wait_node_gone(node_id, timeout=30)
    live = {tags_of(i).get("nodepool_node_id") for i in aws.instances()}
    assert not live & dead, "a dead node's instance outlived its znode"
    got = play_zuul(zuul, rids, timeout=60)
    assert set(got) == set(rids)

    def nothing_left():
        live = [i for i in aws.instances()]
        return not children(client, NODES) and not live
    wait_for(nothing_left, timeout=60,
             what="every node released and every instance terminated")

    per_node = Counter(tags_of(i).get("nodepool_node_id")
                       for i in all_instances(aws))
    assert None not in per_node, "an instance without a node id"
    twice = {n: c for n, c in per_node.items() if c > 1}
    assert not twice, f"nodes with more than one instance: {twice}"
    for node_id, requests in watch.allocs.items():
        assert len(requests) <= 1, (node_id, requests)
    assert set(per_node) >= set(got.values())
