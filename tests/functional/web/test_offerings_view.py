"""Offerings without capacity show in /status.json, /metrics and the status
page (issue "pressure" item 2)."""

from __future__ import annotations

import json
import urllib.request

from nodepool.driver import fake
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.web.browser import Browser

# East goes first (a better priority), so its create is refused for sure
# before west serves the requests.
POOLS = [{"name": name, "max-servers": 10, "priority": priority, "labels": [
    {"name": "small", "cloud-image": "fake-image"}]}
    for name, priority in (("east", 1), ("west", 2))]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_unavailable_offering_is_shown(env, webapp, chromium, tmp_path):
    fake.cloud_for("fake-provider").no_capacity = {"east"}
    env.write_config([fake_provider(pools=POOLS)])
    launcher = env.start_launcher()
    app = webapp(launcher)
    rids = [env.zuul.submit(["small"]) for _ in range(4)]
    for rid in rids:
        assert env.zuul.wait_state(rid, {"fulfilled", "failed"})[
            "state"] == "fulfilled"
    wait_for(lambda: list(launcher.zk.iter_offerings("fake-provider")),
             what="offering record")

    status = json.loads(_get(f"{app.url}/status.json"))
    [provider] = status["providers"]
    [entry] = provider["offerings_unavailable"]
    assert entry["offering"] == "east/small"
    assert entry["pools"] == {"east": ["small"]}
    assert entry["until"] > status["generated"]
    assert "no capacity in east" in entry["reason"]

    metrics = _get(f"{app.url}/metrics")
    assert ('nodepool_offering_unavailable{offering="east/small",'
            'provider="fake-provider"} 1.0') in metrics

    with Browser(tmp_path / "profile") as page:
        page.open(f"{app.url}/")
        page.wait_for("window.nodepoolStatus.updates >= 1")
        row = page.evaluate(
            "(document.querySelector('tr[data-offering=\"east/small\"]')"
            " || {textContent: null}).textContent")
        assert row is not None and "east: small" in row
