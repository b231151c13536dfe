"""``/status.json`` carries whitelisted fields only, the page's assets are
served by the launcher itself, and no output shows a secret."""

from __future__ import annotations

import re

from tests.functional.web.conftest import SECRET
from tests.functional.web.helpers import get

TOP = {"launcher", "generated", "providers", "nodes", "requests",
       "requests_total", "errors"}
LAUNCHER = {"hostname", "version", "ready", "zookeeper_connected"}
PROVIDER = {"name", "driver", "active_launches", "max_servers", "quota",
            "launches", "rate_limiters", "create_pools", "batchers", "pools",
            "offerings_unavailable", "offerings_short"}
QUOTA = {"limit", "used"}
LIMITER = {"name", "rate", "share_rate", "effective_rate", "delay", "tokens",
           "calls", "waits", "wait_seconds", "throttled"}
CREATE_POOL = {"name", "workers", "busy", "queued"}
BATCHER = {"name", "batches", "items", "retries", "recent_sizes"}
POOL = {"name", "priority", "paused", "requests_in_progress",
        "addressable_requests", "max_servers", "labels", "quota"}
LAUNCH = {"count", "mean_seconds"}
NODES = {"total", "states", "by_state", "by_label", "by_provider"}
REQUEST = {"id", "priority", "relative_priority", "state", "requestor",
           "tenant", "node_types", "nodes", "declined_by", "age", "waits"}
ERROR = {"time", "provider", "node", "result", "message"}
NUMBER_MAP = re.compile(r"^[a-z][a-z0-9_.-]*$")


def assert_numbers(mapping: dict) -> None:
    for key, value in mapping.items():
        assert NUMBER_MAP.match(key), key
        assert isinstance(value, (int, float)) and not isinstance(value, bool)


def check_provider(p: dict) -> None:
    assert set(p) == PROVIDER
    assert set(p["quota"]) == QUOTA
    assert_numbers(p["quota"]["limit"])
    assert_numbers(p["quota"]["used"])
    for result, launch in p["launches"].items():
        assert result == "ready" or result.startswith("error.")
        assert set(launch) == LAUNCH
    for limiter in p["rate_limiters"]:
        assert set(limiter) == LIMITER
    for pool in p["create_pools"]:
        assert set(pool) == CREATE_POOL
    for batcher in p["batchers"]:
        assert set(batcher) == BATCHER
        assert all(isinstance(n, int) for n in batcher["recent_sizes"])
    for pool in p["pools"]:
        assert set(pool) == POOL
        assert set(pool["quota"]) == QUOTA
        assert_numbers(pool["quota"]["limit"])
        assert_numbers(pool["quota"]["used"])
        assert all(isinstance(x, str) for x in pool["labels"])


def test_status_json_has_only_whitelisted_fields(site):
    r = get(f"{site.url}/status.json")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "public, max-age=1"
    doc = r.json()
    assert set(doc) == TOP
    assert set(doc["launcher"]) == LAUNCHER
    assert doc["launcher"]["ready"] is True
    assert [p["name"] for p in doc["providers"]] == ["fake-provider"]
    for provider in doc["providers"]:
        check_provider(provider)
    assert set(doc["nodes"]) == NODES
    for counts in [doc["nodes"]["by_state"],
                   *doc["nodes"]["by_label"].values(),
                   *doc["nodes"]["by_provider"].values()]:
        assert_numbers(counts)
    for request in doc["requests"]:
        assert set(request) == REQUEST
    for error in doc["errors"]:
        assert set(error) == ERROR


def test_status_json_figures(site):
    doc = get(f"{site.url}/status.json").json()
    provider = doc["providers"][0]
    assert provider["driver"] == "fake"
    assert provider["launches"]["ready"]["count"] >= 2
    assert provider["quota"]["used"]["instances"] == 2
    # the cost each node recorded (the fake cloud reports the label's
    # cores: 1 for small, 4 for large)
    assert provider["quota"]["used"]["cores"] == 5
    (pool,) = provider["pools"]
    assert pool["name"] == "main" and pool["paused"] is False
    assert pool["max_servers"] == 10
    assert pool["quota"]["limit"] == {"instances": 10}
    assert pool["quota"]["used"]["instances"] == 2
    assert pool["labels"] == ["large", "small"]
    (limiter,) = provider["rate_limiters"]
    assert limiter["name"] == "fake-provider-mutate"
    assert limiter["rate"] == limiter["share_rate"] == 100
    assert limiter["calls"] >= 2
    assert [p["name"] for p in provider["create_pools"]] == ["fake-provider"]
    assert [b["name"] for b in provider["batchers"]] == [
        "fake-provider-delete"]
    assert doc["nodes"]["by_label"] == {"large": {"ready": 1},
                                        "small": {"ready": 1}}
    request = next(r for r in doc["requests"] if r["id"] == site.request_id)
    assert request["state"] == "fulfilled"
    assert request["tenant"] == "tenant-a"
    assert request["priority"] == "200"
    assert request["age"] >= 0


def test_status_page_assets_come_from_the_launcher(site):
    page = get(f"{site.url}/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    # no asset from anywhere but the launcher itself
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    for path, kind in (("/static/status.js", "text/javascript"),
                       ("/static/status.css", "text/css")):
        r = get(f"{site.url}{path}")
        assert r.status == 200 and r.headers["Content-Type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text
        assert f'"{path}"' in page.text
    assert ".innerHTML" not in get(f"{site.url}/static/status.js").text


def test_no_secret_in_any_output(site):
    """The pool's node-attributes carry a password and the ZooKeeper TLS
    key is on disk: neither may reach any endpoint, in any format."""
    certs = site.env.zk_env.server.certs
    with open(certs.client_key) as f:
        key_lines = [line for line in f.read().splitlines()
                     if line and not line.startswith("-----")]
    assert key_lines
    forbidden = [SECRET, *key_lines]
    paths = ["/", "/static/status.js", "/static/status.css", "/ready",
             "/node-list", "/request-list", "/label-list", "/image-list",
             "/status.json", "/metrics", f"/node-list?node_id={site.nodes[0]}"]
    for path in paths:
        for accept in (None, "application/json"):
            body = get(f"{site.url}{path}", accept=accept).text
            for secret in forbidden:
                assert secret not in body, (path, accept)
    # the secret did reach ZooKeeper, so the check above means something
    node = site.env.zuul.get_node(site.nodes[0])
    assert SECRET in repr(node)
