"""Records that do not fit their schema, against a running launcher: they
are quarantined (skipped with one warning per znode version naming the
znode and the field, counted, never handed out) and never fail, delay or
reorder another request.  Each case here broke the launcher before the
schemas existed (the hardening issue).
"""

from __future__ import annotations

import json
import logging

import pytest

from nodepool.cmd.nodepoolcmd import main
from nodepool.driver import fake
from nodepool.stats import get_client
from nodepool.web import WebApp
from tests.functional.launcher.helpers import (errors_logged, fake_provider,
                                              wait_for)
from tests.functional.launcher.statsd import Collector
from tests.functional.web.helpers import get

pytestmark = pytest.mark.functional

PROVIDER = "fake-provider"
BURST = 30


def start(env, max_servers=BURST + 10, labels=None, **kw):
    pools = [{"name": "main", "max-servers": max_servers,
              "labels": [{"name": "small", "cloud-image": "fake-image"}]}]
    env.write_config([fake_provider(pools=pools, rate=1000)],
                     labels=labels, **kw.pop("top", {}))
    return env.start_launcher(**kw)


def plant(client, directory: str, payload, prefix: str = "") -> str:
    """Create a znode as a buggy writer would; returns its name."""
    data = payload if isinstance(payload, bytes) else \
        json.dumps(payload).encode()
    path = client.create(f"{directory}/{prefix}", data, sequence=True,
                         makepath=True)
    return path.rsplit("/", 1)[1]


def raw(client, path: str) -> bytes:
    return client.get(path)[0]


def skip_warnings(caplog, path: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"Skipping znode {path}:")]


def burst(env, count=BURST, labels=("small",)) -> list[dict]:
    rids = [env.zuul.submit(list(labels)) for _ in range(count)]
    return [env.zuul.wait_state(r, {"fulfilled", "failed"}, timeout=60)
            for r in rids]


def test_unhashable_request_labels_hold_back_no_request(env, caplog):
    caplog.set_level(logging.INFO, logger="nodepool")
    launcher = start(env)
    # Priority 100 sorts before every request of the burst.
    bad = plant(env.client, "/nodepool/requests",
                {"state": "requested", "node_types": [{"a": 1}, None, 5]},
                prefix="100-")
    path = f"/nodepool/requests/{bad}"
    before = raw(env.client, path)
    results = burst(env)
    assert [r["state"] for r in results] == ["fulfilled"] * BURST
    # Not addressed to us (none of our labels): left as it is.
    assert raw(env.client, path) == before
    worker = next(iter(launcher.pool_workers().values()))
    passes = worker.passes
    wait_for(lambda: worker.passes > passes + 5, what="more passes")
    assert skip_warnings(caplog, path) == [
        f"Skipping znode {path}: field 'node_types[0]': expected a "
        "string, got an object"]
    assert errors_logged(caplog) == []
    assert launcher.zk.quarantine.counts()["request"] == 1


def test_unreadable_ready_nodes_are_never_handed_out(env, caplog):
    caplog.set_level(logging.INFO, logger="nodepool")
    launcher = start(env, labels=[{"name": "small", "min-ready": 1,
                                   "max-ready-age": 3600}])
    ready = {"state": "ready", "provider": PROVIDER, "pool": "main",
             "allocated_to": None, "state_time": 1.0}
    bad_ids = [plant(env.client, "/nodepool/nodes", {**ready, **extra})
               for extra in ({"type": [["x"]]},
                             {"type": ["small"], "state_time": "yesterday"},
                             {"type": ["small"], "reuse": 1,
                              "resources": {"cores": "many"}})]
    before = {i: raw(env.client, f"/nodepool/nodes/{i}") for i in bad_ids}
    results = burst(env)
    assert [r["state"] for r in results] == ["fulfilled"] * BURST
    handed = {n for r in results for n in r["nodes"]}
    assert handed.isdisjoint(bad_ids)
    # The duties that read every node run as usual (they raised before).
    launcher.min_ready.run_once()
    launcher.cleanup_worker.run_once()
    assert {i: raw(env.client, f"/nodepool/nodes/{i}")
            for i in bad_ids} == before
    for node_id in bad_ids:
        assert len(skip_warnings(caplog, f"/nodepool/nodes/{node_id}")) == 1
    assert errors_logged(caplog) == []


def test_numbers_where_lists_belong_break_no_duty(env, caplog):
    """Found by the fuzz test: a number as a node's ``type`` or a
    request's ``nodes`` made every cleanup duty that reads the caches
    (lost requests, max-ready-age) fail on every pass."""
    caplog.set_level(logging.INFO, logger="nodepool")
    launcher = start(env, labels=[{"name": "small", "max-ready-age": 60}])
    node = plant(env.client, "/nodepool/nodes",
                 {"state": "ready", "provider": PROVIDER, "pool": "main",
                  "type": 1.5, "state_time": 1.0})
    request = plant(env.client, "/nodepool/requests",
                    {"state": "pending", "node_types": ["small"],
                     "nodes": 1.5}, prefix="200-")
    wait_for(lambda: len(launcher.zk.quarantined()) == 2,
             what="both quarantined")
    for _ in range(3):
        launcher.cleanup_worker.run_fast()
        launcher.cleanup_worker.run_once()
    assert [r["state"] for r in burst(env, count=3)] == ["fulfilled"] * 3
    assert json.loads(raw(env.client, f"/nodepool/nodes/{node}"))["type"] \
        == 1.5
    assert json.loads(raw(env.client,
                          f"/nodepool/requests/{request}"))["state"] == \
        "pending"
    assert errors_logged(caplog) == []


def test_an_unreadable_node_keeps_its_instance(env):
    launcher = start(env)
    cloud = fake.cloud_for(PROVIDER)
    # Cut off mid-write: not even JSON, so not even its provider is known.
    bad = plant(env.client, "/nodepool/nodes",
                b'{"state": "in-use", "provider": "fake-provider", "ty')
    iid = cloud.create({"nodepool_provider_name": PROVIDER,
                        "nodepool_node_id": bad})
    leaked = cloud.create({"nodepool_provider_name": PROVIDER,
                           "nodepool_node_id": "0000999999"})
    for _ in range(2):      # a leak is deleted on its second sighting
        launcher.cleanup_worker.run_once()
    # The delete runs on the provider's loop: the leak goes, the other stays.
    wait_for(lambda: leaked not in cloud.instances, what="the leak deleted")
    assert iid in cloud.instances


def test_unreadable_requests_addressed_to_us_fail(env, caplog):
    caplog.set_level(logging.INFO, logger="nodepool")
    launcher = start(env, labels=[{"name": "small"}, {"name": "elsewhere"}])
    worker = next(iter(launcher.pool_workers().values()))
    span = {"span_info": {"trace": "abc"}, "requestor_data": {"job": "x"}}
    ours = [
        {"state": "requested", "node_types": ["small"],
         "relative_priority": "high", **span},
        {"state": "requested", "node_types": "small", **span},
        {"state": "requested", "provider": PROVIDER,
         "node_types": [{"a": 1}], "declined_by": None, **span},
        {"state": "requested", "node_types": ["small", 7],
         "declined_by": ["other-pool"], **span},
    ]
    not_ours = [
        {"state": "requested", "node_types": ["elsewhere"], "reuse": "no"},
        {"state": "pending", "node_types": ["small"], "reuse": "no"},
        b'\xff\xfe{"state": "requested", "node_types": ["small"]}',
        b'{"state": "requested", "node_types": ["small"]',
    ]
    planted = [plant(env.client, "/nodepool/requests", p, prefix="100-")
               for p in ours + not_ours]
    good = env.zuul.submit(["small"])
    assert env.zuul.wait_state(good, {"fulfilled", "failed"})["state"] \
        == "fulfilled"
    for rid, payload in zip(planted, ours):
        result = env.zuul.wait_state(rid, {"failed"}, timeout=15)
        assert result["declined_by"] == \
            list(payload.get("declined_by") or []) + [worker.id]
        assert result["state_time"] > 1.0
        rest = {k: v for k, v in result.items()
                if k not in ("state", "state_time", "declined_by")}
        assert rest == {k: v for k, v in payload.items()
                        if k not in ("state", "declined_by")}
        assert any(f"Declined request {rid} (failed): it cannot be read: "
                   "field '" in r.getMessage() for r in caplog.records)
    kept = {rid: raw(env.client, f"/nodepool/requests/{rid}")
            for rid in planted[len(ours):]}
    passes = worker.passes
    wait_for(lambda: worker.passes > passes + 5, what="more passes")
    for rid, payload in zip(planted[len(ours):], not_ours):
        data = raw(env.client, f"/nodepool/requests/{rid}")
        assert data == kept[rid]
        if not isinstance(payload, bytes):
            assert json.loads(data) == payload
    assert errors_logged(caplog) == []


def test_listings_name_each_bad_znode_and_show_the_good(env, capsys):
    launcher = start(env)
    rid = env.zuul.submit(["small"])
    good = env.zuul.wait_state(rid, {"fulfilled"})["nodes"][0]
    bad_node = plant(env.client, "/nodepool/nodes",
                     {"state": "ready", "provider": PROVIDER, "pool": "main",
                      "type": ["small"], "state_time": "yesterday"})
    bad_request = plant(env.client, "/nodepool/requests",
                        b"\x80not json", prefix="200-")
    node_line = (f"nodepool: skipped unreadable znode /nodepool/nodes/"
                 f"{bad_node}: field 'state_time': expected a number or "
                 "null, got a string")
    for argv in (["list"], ["list", "--detail"], ["list", "--json"]):
        capsys.readouterr()
        assert main(["-c", env.config_path, *argv]) == 0
        out, err = capsys.readouterr()
        assert good in out and bad_node not in out
        assert err.splitlines() == [node_line]
        if "--json" in argv:
            assert [row["id"] for row in json.loads(out)] == [good]
    capsys.readouterr()
    assert main(["-c", env.config_path, "info", PROVIDER]) == 0
    out, err = capsys.readouterr()
    assert good in out and err.splitlines() == [node_line]
    assert main(["-c", env.config_path, "request-list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["id"] for r in json.loads(out)] == [rid]
    assert err.startswith(f"nodepool: skipped unreadable znode "
                          f"/nodepool/requests/{bad_request}: invalid JSON")
    wait_for(lambda: launcher.zk.quarantined("node"), what="cache sees it")
    app = WebApp(launcher, port=0, listen_address="127.0.0.1")
    app.start()
    try:
        for path in ("/node-list", "/request-list"):
            response = get(app.url + path, accept="application/json")
            assert response.status == 200
            ids = [row["id"] for row in response.json()]
            assert bad_node not in ids and bad_request not in ids
        assert good in [row["id"] for row in get(
            app.url + "/node-list", accept="application/json").json()]
    finally:
        app.stop()


def metric(app, name: str) -> float | None:
    for line in get(app.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_quarantine_is_counted_in_statsd_and_metrics(env):
    collector = Collector()
    stats = get_client({"STATSD_HOST": "127.0.0.1",
                        "STATSD_PORT": str(collector.port)})
    launcher = start(env, stats=stats)
    app = WebApp(launcher, port=0, listen_address="127.0.0.1")
    app.start()
    line = "nodepool.zk.bad_records.node:1|c"
    try:
        bad = plant(env.client, "/nodepool/nodes",
                    {"state": "ready", "type": [["x"]]})
        path = f"/nodepool/nodes/{bad}"
        wait_for(lambda: collector.count(line) == 1, what="statsd counter")
        # Another bad version of the same znode counts once more.
        env.client.set(path, json.dumps({"state": "sleeping"}).encode())
        wait_for(lambda: collector.count(line) == 2, what="second version")
        worker = next(iter(launcher.pool_workers().values()))
        passes = worker.passes
        wait_for(lambda: worker.passes > passes + 5, what="more passes")
        assert collector.count(line) == 2     # not once per pass
        assert metric(app, 'nodepool_bad_records_total{kind="node"}') == 2
        assert metric(app, 'nodepool_quarantined_records{kind="node"}') == 1
        assert metric(app,
                      'nodepool_bad_records_total{kind="request"}') == 0
        env.client.delete(path)
        wait_for(lambda: metric(
            app, 'nodepool_quarantined_records{kind="node"}') == 0,
            what="quarantine emptied")
    finally:
        app.stop()
        stats.close()
        collector.close()
