"""``/metrics`` scraped with Prometheus' own parser during a launch burst."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from nodepool.driver import fake
from nodepool.driver.errors import LaunchError
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.web.helpers import get

PROVIDER = "fake-provider"


class Scrape:
    def __init__(self, url: str):
        r = get(f"{url}/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        self.families = {f.name: f for f in
                         text_string_to_metric_families(r.text)}

    def total(self, sample: str) -> float:
        return sum(s.value for family in self.families.values()
                   for s in family.samples if s.name == sample)

    def value(self, sample: str, default: float | None = 0.0, **labels):
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v
                                            for k, v in labels.items()):
                    return s.value
        return default


def test_metrics_move_during_a_launch_burst(env, webapp):
    env.write_config([fake_provider(rate=20, create_latency=0.3,
                                    launch_retries=3)])
    launcher = env.start_launcher()
    app = webapp(launcher)
    cloud = fake.cloud_for(PROVIDER)
    p = {"provider": PROVIDER}
    limiter = {**p, "limiter": f"{PROVIDER}-mutate"}

    before = Scrape(app.url)
    assert before.value("nodepool_launcher_ready") == 1
    assert before.value("nodepool_zookeeper_connected") == 1
    assert before.value("nodepool_nodes", state="ready") == 0
    assert before.value("nodepool_launches_total", None, **p) is None
    assert before.value("nodepool_rate_limiter_calls_total", **limiter) == 0
    assert before.value("nodepool_rate_limiter_rate", **limiter) == 20
    assert before.value("nodepool_provider_max_servers", **p) == 10
    assert before.value("nodepool_pool_quota_limit", pool="main",
                        resource="instances", **p) == 10
    assert before.value("nodepool_create_pool_workers", **p,
                        pool=PROVIDER) >= 1

    cloud.create_errors.append(LaunchError("fake cloud: boom",
                                           stat_key="error.status"))
    rid = env.zuul.submit(["small"] * 6)
    during = wait_for(
        lambda: (s := Scrape(app.url)).value(
            "nodepool_create_pool_busy", pool=PROVIDER, **p) > 0 and s,
        what="a scrape showing create calls in flight")
    assert during.value("nodepool_provider_active_launches", **p) > 0
    assert during.value("nodepool_pool_requests_in_progress",
                        pool="main", **p) == 1
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] \
        == "fulfilled"

    # the launcher's watch cache may lag its own write by a moment
    after = wait_for(
        lambda: (s := Scrape(app.url)).value(
            "nodepool_requests", state="fulfilled") == 1 and s,
        what="the fulfilled request in the metrics")
    ready = {**p, "result": "ready"}
    assert after.value("nodepool_launches_total", **ready) == 6
    assert after.value("nodepool_launches_total", **p,
                       result="error.status") == 1
    assert after.value("nodepool_launch_duration_seconds_count",
                       **ready) == 6
    assert after.value("nodepool_launch_duration_seconds_bucket", **ready,
                       le="+Inf") == 6
    assert after.value("nodepool_launch_duration_seconds_bucket", **ready,
                       le="0.1") < 6          # each create took 0.3 s
    assert after.value("nodepool_launch_duration_seconds_sum",
                       **ready) >= 6 * 0.3
    assert after.value("nodepool_nodes", state="ready") == 6
    assert after.value("nodepool_provider_nodes", state="ready", **p) == 6
    assert after.value("nodepool_label_nodes", label="small",
                       state="ready") == 6
    assert after.value("nodepool_pool_quota_used", pool="main",
                       resource="instances", **p) == 6
    assert after.value("nodepool_provider_quota_used", resource="instances",
                       **p) == 6
    # seven creates started within ~0.3 s at 20/s: most had to wait
    assert after.value("nodepool_rate_limiter_calls_total", **limiter) == 7
    assert after.value("nodepool_rate_limiter_waits_total", **limiter) >= 1
    assert after.value("nodepool_rate_limiter_wait_seconds_total",
                       **limiter) > 0
    assert after.value("nodepool_pool_paused", pool="main", **p) == 0

    nodes = env.zuul.accept(rid)
    env.zuul.release(nodes)
    batcher = {**p, "batcher": f"{PROVIDER}-delete"}
    gone = wait_for(
        lambda: (s := Scrape(app.url)).total("nodepool_nodes") == 0 and s,
        what="the nodes to be deleted")
    assert gone.value("nodepool_batch_size_sum", **batcher) == 6
    batches = gone.value("nodepool_batch_size_count", **batcher)
    assert 1 <= batches <= 6
    assert gone.value("nodepool_batch_size", **batcher, quantile="1.0") >= 1
    assert gone.value("nodepool_rate_limiter_calls_total", **limiter) \
        == 7 + batches
    assert gone.value("nodepool_pool_quota_used", None, pool="main",
                      resource="instances", **p) in (None, 0)
