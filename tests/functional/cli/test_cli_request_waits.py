"""``nodepool request-list --detail`` against records seeded as launchers
and Zuul write them: the wait columns come only with ``--detail``, each
pool's reason on its own, and a request whose label no registered pool
offers says so even with no launcher running to write it."""

from __future__ import annotations

import json
import time

from nodepool.zk import NodeRequest, PoolComponent
from nodepool.zk.waits import RequestWait
from tests.functional.cli.conftest import NOW
from tests.functional.launcher.helpers import wait_for

UPSTREAM = ["id", "relative_priority", "state", "requestor", "node_types",
            "nodes", "declined_by", "event_id"]


def put(seed, wait: RequestWait) -> None:
    done = []
    seed.put_wait_async(wait, False, done.append)
    wait_for(lambda: done == [True], what="the record written")


def test_detail_adds_the_reasons_of_every_pool(cli, seed):
    rid = seed.submit_request(NodeRequest(node_types=["small"]))
    component = PoolComponent()
    component.id = "host-PoolWorker.aws-main-" + "a" * 32
    component.supported_labels = ["small"]
    seed.register_pool(component)
    for pool, kind, text, since in (
            ("main", "quota", "at quota: pool max-servers reached: "
             "instances needs 1, 0 free", NOW - 90),
            ("spare", "offering", "offering s/t3 unavailable until "
             "2023-11-14T22:30:00Z for label(s) small: no capacity",
             NOW - 30)):
        put(seed, RequestWait(request=rid, worker=f"w-{pool}", kind=kind,
                              text=text, since=since, provider="aws",
                              pool=pool, hostname="host"))
    plain = cli("request-list", "--json")
    assert plain.rc == 0 and list(json.loads(plain.out)[0]) == UPSTREAM
    [row] = json.loads(cli("request-list", "--detail", "--json").out)
    assert list(row) == UPSTREAM + ["wait_kind", "wait_since",
                                    "wait_reason"]
    assert row["wait_kind"] == ["quota", "offering"]
    assert row["wait_since"] == NOW - 90
    assert row["wait_reason"][0].startswith("aws/main: at quota: pool")
    text = cli("request-list", "--detail").out
    assert "| 00:00:01:30 " in text      # waiting since, as DD:HH:MM:SS
    assert ("aws/main: at quota: pool max-servers reached: instances needs "
            "1, 0 free; aws/spare: offering s/t3") in text


def test_a_label_no_registered_pool_offers(cli, seed):
    created = time.time()
    rid = seed.submit_request(NodeRequest(node_types=["gpu", "small"],
                                          created_time=created))
    [row] = json.loads(cli("request-list", "--detail", "--json").out)
    assert row["id"] == rid
    assert row["wait_kind"] == ["no-pool"]
    assert row["wait_reason"] == [
        "no registered pool offers label(s) gpu,small"]
    assert row["wait_since"] == created
