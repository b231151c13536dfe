"""Why a request waits, read by another process's ways: the CLI
(``request-list --detail``) and the web app (``/request-list?detail``),
for each waiting state the local AWS can put the launcher in (issue 18
item 4): max-servers (a burst of 30), an unavailable offering, a node
being built, max-concurrency, an image not ready, a label no pool
serves, a tenant at its limit.  Real ZooKeeper, the local AWS over HTTP, the launcher in-process
as Zuul sees it.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

from nodepool.cmd.nodepoolcmd import main
from nodepool.web.server import WebApp
from tests.functional.launcher.helpers import wait_for
from tests.functional.web.helpers import get


def cli_waits(config_path: str) -> dict[str, dict]:
    """request id -> its ``request-list --detail --json`` row."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-c", config_path, "request-list", "--detail",
                     "--json"]) == 0
    return {row["id"]: row for row in json.loads(out.getvalue())}


def web_waits(app: WebApp) -> dict[str, dict]:
    response = get(f"{app.url}/request-list?detail", "application/json")
    assert response.status == 200
    return {row["id"]: row for row in response.json()}


def waits_of(env, rid: str, kind):
    """The launcher's wait records of ``rid`` once one has ``kind`` (or
    one of the kinds in a tuple)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)

    def found():
        records = env.launchers[0].zk.waits_by_request(cached=False).get(
            rid, [])
        return records if any(w.kind in kinds for w in records) else None
    return wait_for(found, what=f"a {kind} wait record for {rid}")


def start(env, aws, publish_after=0.0, **provider):
    env.write_config([aws.provider(**provider)])
    launcher = env.start_launcher()
    for worker in launcher.pool_workers().values():
        worker.waits.publish_after = publish_after
    return launcher


def hold_one(env, labels=("small",)) -> list[str]:
    rid = env.zuul.submit(list(labels))
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    return env.zuul.accept(rid)


def test_thirty_requests_at_max_servers_each_show_it_written_once(env, aws):
    launcher = start(env, aws, pool_extra={"max-servers": 1})
    [worker] = launcher.pool_workers().values()
    held = hold_one(env)
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    submitted = time.time()
    # The full pool takes the first request to wait at quota; the others
    # queue behind it, still requested (free for a pool with room), each
    # record naming the request it waits behind.
    waits_of(env, rids[0], "quota")

    def named():
        rows = cli_waits(env.config_path)
        return all(r in rows and "behind request" in rows[r]["wait_reason"][0]
                   for r in rids[1:])
    wait_for(named, what="29 queued records naming the waiting request")
    assert env.zuul.get_request(rids[0])["state"] == "pending"
    assert {env.zuul.get_request(r)["state"] for r in rids[1:]} == {
        "requested"}

    def versions():
        out = {}
        for rid in rids:
            [name] = [n for n in env.client.get_children(
                "/nodepool/request-waits") if n.startswith(rid + ":")]
            out[rid] = env.client.get(
                f"/nodepool/request-waits/{name}")[1].version
        return out
    # Written once each, or twice for a queued one first written before
    # its blocker's take ended; then no record is rewritten while nothing
    # changes.
    settled, before = versions(), worker.waits.writes
    assert set(settled.values()) <= {0, 1}
    passes = worker.passes
    wait_for(lambda: worker.passes >= passes + 10, what="ten more passes")
    assert versions() == settled
    assert worker.waits.writes == before
    rows = cli_waits(env.config_path)
    assert rows[rids[0]]["wait_kind"] == ["quota"]
    for rid in rids:
        [kind] = rows[rid]["wait_kind"]
        [text] = rows[rid]["wait_reason"]
        if kind == "quota":
            assert text == ("aws/main: at quota: pool max-servers reached: "
                            "instances needs 1, 0 free")
        else:
            assert kind == "queued" and "behind request" in text
            assert "max-servers reached" in text
        # since: when the reason first held, not the latest pass.
        assert submitted - 1 <= rows[rid]["wait_since"] <= time.time()
    first = rids[0]
    # Served: its record goes, the next one now waits at quota.
    env.zuul.release(held)
    assert env.zuul.wait_state(first, {"fulfilled"})["state"] == "fulfilled"
    wait_for(lambda: first not in launcher.zk.waits_by_request(
        cached=False), what="the served request's record gone")
    waits_of(env, rids[1], "quota")


def test_an_unavailable_offering_says_until_when(env, aws):
    aws.local.inject_fault("InsufficientInstanceCapacity", count=1)
    launcher = start(env, aws)
    manager = launcher.provider_managers()["aws"]
    manager.offerings.base_ttl = 120
    rid = env.zuul.submit(["small"])
    [record] = waits_of(env, rid, "offering")
    key = f"{aws.boot['subnet_id']}/t3.medium"
    offering = manager.offerings.records.get_offering("aws", key)
    assert record.details["offering"] == key
    assert record.details["until"] == offering.until
    assert f"offering {key} unavailable until 20" in record.text
    assert "InsufficientInstanceCapacity" in record.text
    app = WebApp(launcher, port=0)
    app.start()
    try:
        row = web_waits(app)[rid]
        assert row["wait_kind"] == ["offering"]
        assert row["wait_reason"] == [f"aws/main: {record.text}"]
        text = get(f"{app.url}/request-list?detail").text
        assert "Wait Reason" in text and f"offering {key}" in text
        # Without ?detail, upstream's columns only.
        plain = get(f"{app.url}/request-list", "application/json").json()
        assert set(plain[0]) == {"id", "relative_priority", "state",
                                 "requestor", "node_types", "nodes",
                                 "declined_by", "event_id"}
    finally:
        app.stop()


def test_a_node_being_built_is_named(env, aws):
    aws.local.configure(run_instances_latency=3.0)
    launcher = start(env, aws, publish_after=0.5)
    rid = env.zuul.submit(["small"])
    [record] = waits_of(env, rid, "building")
    [node_id] = record.details["nodes"]
    assert record.text == f"waiting for node(s) {node_id} being built"
    assert cli_waits(env.config_path)[rid]["wait_kind"] == ["building"]
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    wait_for(lambda: rid not in launcher.zk.waits_by_request(cached=False),
             what="the record gone once fulfilled")


def test_max_concurrency_throttles(env, aws):
    aws.local.configure(run_instances_latency=3.0)
    start(env, aws, **{"max-concurrency": 1})
    first = env.zuul.submit(["small"])
    second = env.zuul.submit(["small"])
    [record] = waits_of(env, second, "throttled")
    assert "max-concurrency 1" in record.text
    assert record.details == {"max_concurrency": 1}
    assert cli_waits(env.config_path)[second]["wait_kind"] == ["throttled"]
    for rid in (first, second):
        assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == \
            "fulfilled"


def test_an_image_not_ready_and_a_label_no_pool_serves(env, aws):
    disk = aws.label("disk")
    del disk["cloud-image"]
    disk["diskimage"] = "ubuntu"
    main_provider = aws.provider(labels=[disk, aws.label("small")],
                                 diskimages=[{"name": "ubuntu"}])
    # A provider that serves "disk" but takes no requests (max-concurrency
    # 0): the requests declined by the first pool keep waiting for it.
    idle = aws.provider("idle", labels=[aws.label("disk")],
                        **{"max-concurrency": 0})
    env.write_config([main_provider, idle], diskimages=[{"name": "ubuntu"}])
    launcher = env.start_launcher()
    for worker in launcher.pool_workers().values():
        worker.waits.publish_after = 0.0
    image = env.zuul.submit(["disk"])
    ghost = env.zuul.submit(["ghost"])
    [record] = waits_of(env, image, "image")
    assert record.text == "image not ready in this pool for disk (ubuntu)"
    [record] = waits_of(env, ghost, "no-pool")
    assert record.text == "no pool serves label(s) ghost"
    rows = cli_waits(env.config_path)
    assert rows[image]["wait_kind"] == ["image"]
    assert rows[ghost]["wait_reason"] == [
        "aws/main: no pool serves label(s) ghost"]
    # Gone once the request is gone.
    env.zuul.delete_request(ghost)
    wait_for(lambda: ghost not in launcher.zk.waits_by_request(
        cached=False), what="the deleted request's record gone")


def test_a_tenant_at_its_limit_says_which_and_what_is_free(env, aws):
    env.write_config([aws.provider()], **{"tenant-resource-limits": [
        {"tenant-name": "t1", "max-servers": 1}]})
    launcher = env.start_launcher()
    for worker in launcher.pool_workers().values():
        worker.waits.publish_after = 0.0
    first = env.zuul.submit(["small"], tenant="t1")
    assert env.zuul.wait_state(first, {"fulfilled"})["state"] == "fulfilled"
    held = env.zuul.accept(first)
    second = env.zuul.submit(["small"], tenant="t1")
    other = env.zuul.submit(["small"], tenant="t2")
    [record] = waits_of(env, second, "quota")
    assert record.text == ("at quota: tenant-resource-limits of t1 reached: "
                           "instances needs 1, 0 free")
    assert record.details == {"limit": "tenant-resource-limits of t1",
                              "resource": "instances", "need": 1, "free": 0}
    # Another tenant is served meanwhile, and carries no reason.
    assert env.zuul.wait_state(other, {"fulfilled"})["state"] == "fulfilled"
    assert cli_waits(env.config_path)[other]["wait_kind"] == []
    env.zuul.release(held)
    assert env.zuul.wait_state(second, {"fulfilled"})["state"] == \
        "fulfilled"
    wait_for(lambda: second not in launcher.zk.waits_by_request(
        cached=False), what="the record gone once served")
