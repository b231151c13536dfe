"""Why a request waits, with the static driver (issue 18 item 4): every
slot busy, the request says so -- through the CLI, ``/request-list`` and
the status page -- and its record goes once a slot frees up; the queue
time of fulfilled requests reaches statsd and ``/metrics``.  Real
ZooKeeper, a real UDP statsd listener, no host contacted
(``host-key-checking: false``).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from nodepool.cmd.nodepoolcmd import main
from nodepool.web.server import WebApp
from tests.functional.launcher.helpers import wait_for
from tests.functional.web.helpers import get
from tools.sshd import free_port

pytestmark = pytest.mark.functional


def start_static(env):
    host = {"name": "127.0.0.1", "labels": ["static-label"],
            "username": "zuul", "connection-port": free_port(),
            "host-key-checking": False}
    env.write_config([{"name": "static", "driver": "static",
                       "pools": [{"name": "main", "nodes": [host]}]}])
    launcher = env.start_launcher()
    [worker] = launcher.pool_workers().values()
    worker.waits.publish_after = 0.0
    return launcher


def request_rows(config_path: str, *extra: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-c", config_path, "request-list", *extra]) == 0
    return out.getvalue()


def test_a_busy_static_slot_is_the_reason(env, collector):
    launcher = start_static(env)
    app = WebApp(launcher, port=0)
    app.start()
    try:
        check_busy_slot(env, launcher, app, collector)
    finally:
        app.stop()


def check_busy_slot(env, launcher, app, collector):
    zuul = env.zuul
    first = zuul.submit(["static-label"])
    assert zuul.wait_state(first, {"fulfilled"})["state"] == "fulfilled"
    nodes = zuul.accept(first)
    second = zuul.submit(["static-label"])
    wait_for(lambda: launcher.zk.waits_by_request(cached=False).get(second),
             what="the second request's wait record")
    [record] = launcher.zk.waits_by_request(cached=False)[second]
    assert (record.kind, record.text) == (
        "static-slot", "waiting for a free static slot for label(s) "
        "static-label")
    assert (record.provider, record.pool) == ("static", "main")
    # The CLI: upstream's columns without --detail, the reason with it.
    plain = request_rows(env.config_path)
    assert "Wait Reason" not in plain and "static slot" not in plain
    detail = request_rows(env.config_path, "--detail")
    header = detail.splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == [
        "Waiting For", "Waiting Since", "Wait Reason"]
    assert ("static/main: waiting for a free static slot for label(s) "
            "static-label") in detail
    status = get(f"{app.url}/status.json").json()
    [request] = [r for r in status["requests"] if r["id"] == second]
    [wait] = request["waits"]
    assert set(wait) == {"kind", "text", "since", "waiting", "provider",
                         "pool", "hostname"}
    assert wait["kind"] == "static-slot" and wait["waiting"] >= 0
    # The slot comes back: the request is served, its record goes.
    zuul.release(nodes)
    assert zuul.wait_state(second, {"fulfilled"})["state"] == "fulfilled"
    wait_for(lambda: second not in launcher.zk.waits_by_request(
        cached=False), what="the record gone once served")
    # Queue time per label: a statsd timer and a Prometheus histogram.
    key = "nodepool.label.static-label.request_queue"
    wait_for(lambda: len(collector.values(key, "ms")) == 2,
             what="two queue timers")
    assert all(0 <= float(ms) < 60000
               for ms in collector.values(key, "ms"))
    wait_for(lambda: 'nodepool_label_request_queue_seconds_count{label='
             '"static-label"} 2.0' in get(f"{app.url}/metrics").text,
             what="two observations in the histogram")


def test_min_ready_requests_are_not_timed(env, collector):
    launcher = start_static(env)
    rid = env.zuul.submit(["static-label"], requestor="NodePool:min-ready")
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    other = env.zuul.submit(["static-label"])
    env.zuul.delete_request(rid)
    assert env.zuul.wait_state(other, {"fulfilled"})["state"] == "fulfilled"
    key = "nodepool.label.static-label.request_queue"
    wait_for(lambda: collector.values(key, "ms"), what="a queue timer")
    [worker] = launcher.pool_workers().values()
    passes = worker.passes
    wait_for(lambda: worker.passes >= passes + 3, what="three more passes")
    assert len(collector.values(key, "ms")) == 1
