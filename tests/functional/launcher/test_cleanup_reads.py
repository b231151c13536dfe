"""The cleanup worker's full pass reads from the caches: 30 nodes and 30
pending requests cost no ZooKeeper read on a pass once the caches hold
them (the pass used to read every node and every request afresh each
minute, the main noise in the launcher's ZooKeeper operations), and the
rules it applies still hold: a leaked instance is deleted on the second
pass, a pending request nobody holds is reset."""

from __future__ import annotations

import collections

from nodepool.driver import fake
from nodepool.zk.models import NodeState
from nodepool.zk.paths import NODES, REQUESTS
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.zk.counting import count_requests

BURST = 30


def reads(sent: collections.Counter, root: str) -> int:
    return sum(n for (kind, path), n in sent.items()
               if kind in ("GetData", "Exists", "GetChildren", "GetChildren2")
               and path.startswith(root + "/"))


def test_a_full_pass_reads_nothing_the_caches_hold(env):
    env.write_config([fake_provider(pools=[
        {"name": "main", "max-servers": BURST,
         "labels": [{"name": "small", "cloud-image": "fake-image"}]}])])
    launcher = env.start_launcher()
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(BURST)]
    for rid in rids:
        assert zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    # 30 more wait at quota: the first taken (pending, held by our pool
    # worker), the others queued behind it.
    waiting = [zuul.submit(["small"]) for _ in range(BURST)]
    wait_for(lambda: any(zuul.get_request(r)["state"] == "pending"
                         for r in waiting), what="a request pending at quota")
    cloud = fake.cloud_for("fake-provider")
    leaked = cloud.create({"nodepool_provider_name": "fake-provider",
                           "nodepool_node_id": "9999999999"})
    worker = launcher.cleanup_worker
    worker.cleanup_leaks()          # the caches may read what they lack
    worker.cleanup_lost_requests()
    assert leaked in cloud.instances          # a suspect, not yet deleted
    sent = count_requests(launcher.zk)
    worker.cleanup_leaks()
    worker.cleanup_lost_requests()
    assert reads(sent, NODES) == 0, sent
    assert reads(sent, REQUESTS) == 0, sent
    # The second pass deletes it (on the provider's loop, so wait for it).
    wait_for(lambda: leaked not in cloud.instances, what="the leak deleted")
    for rid in rids:
        node_id = zuul.get_request(rid)["nodes"][0]
        assert zuul.get_node(node_id)["state"] == NodeState.READY
    assert {zuul.get_request(r)["state"] for r in waiting} == {
        "pending", "requested"}
