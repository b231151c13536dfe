"""Statsd metrics of a running launcher (cli.md §4, behaviour 49), read
from a real UDP socket.

``STATSD_HOST``/``STATSD_PORT`` are set before the launcher is created, so
the launcher finds its collector the way a deployment does
(``nodepool.stats.get_client`` reads the environment).  Gauges are repeated
every second; "latest value" assertions wait for the value to appear, and
"never sent" assertions are made after the collector has seen several
rounds of a gauge that is sent in the same pass.
"""

from __future__ import annotations


import pytest

from nodepool.driver import errors, fake
from nodepool.stats import NODE_STATES, get_client
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.launcher.statsd import Collector

pytestmark = pytest.mark.functional

PROVIDER = "fake-provider"


def launch_keys(result: str, requestor: str, az: str | None):
    keys = ["nodepool.launch", f"nodepool.launch.provider.{PROVIDER}",
            f"nodepool.launch.requestor.{requestor}"]
    if az:
        keys.append(f"nodepool.launch.provider.{PROVIDER}.{az}")
    return [f"{k}.{result}" for k in keys]


# -- launch counters and timers ---------------------------------------------

def test_ready_launch_counters_and_timers(env, collector):
    env.write_config([fake_provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"], requestor="zuul.example.org:9000")
    env.zuul.wait_state(rid, {"fulfilled"})
    for key in launch_keys("ready", "zuul_example_org_9000", "fake-az1"):
        wait_for(lambda: collector.values(key, "c") == ["1"],
                 what=f"counter {key}")
        (ms,) = collector.values(key, "ms")
        assert 0 <= float(ms) < 20000


def test_failed_attempts_emit_error_kinds(env, collector):
    cloud = fake.cloud_for(PROVIDER)
    cloud.create_errors = [errors.QuotaError("over quota"),
                           errors.LaunchError("boom", stat_key="error.status")]
    env.write_config([fake_provider(**{"launch-retries": 2})])
    env.start_launcher()
    rid = env.zuul.submit(["small"], requestor="zuul")
    env.zuul.wait_state(rid, {"fulfilled"})
    for result in ("error.quota", "error.status"):
        # The create call failed, so the node never got an AZ.
        for key in launch_keys(result, "zuul", None):
            wait_for(lambda: collector.values(key, "c") == ["1"],
                     what=f"counter {key}")
            assert len(collector.values(key, "ms")) == 1
        assert collector.values(
            f"nodepool.launch.provider.{PROVIDER}.fake-az1.{result}",
            "c") == []
    for key in launch_keys("ready", "zuul", "fake-az1"):
        wait_for(lambda: collector.values(key, "c") == ["1"],
                 what=f"counter {key}")


def test_launch_timeout_is_servercreatetimeout(env, collector):
    env.write_config([fake_provider(**{"launch-timeout": 1,
                                       "boot-time": 30,
                                       "launch-retries": 1})])
    env.start_launcher()
    rid = env.zuul.submit(["small"], requestor="zuul")
    assert env.zuul.wait_state(rid, {"failed", "fulfilled"})["state"] \
        == "failed"
    key = "nodepool.launch.error.servercreatetimeout"
    wait_for(lambda: collector.values(key, "c") == ["1"], what=key)
    assert float(collector.values(key, "ms")[0]) >= 1000


# -- node gauges and addressable requests (stats leader) ---------------------

def two_pool_provider():
    return fake_provider(pools=[
        {"name": "main", "max-servers": 10,
         "labels": [{"name": "small", "cloud-image": "fake-image"}]},
        {"name": "other", "max-servers": 5,
         "labels": [{"name": "large", "cloud-image": "fake-image"}]}])


def test_node_gauges_and_addressable_requests(env, collector):
    env.write_config([two_pool_provider()])
    launcher = env.start_launcher()
    wait_for(launcher.stats_election.leading.is_set, what="stats leader")
    zuul = env.zuul
    served = zuul.submit(["small"])
    zuul.wait_state(served, {"fulfilled"})    # left in place: addressable
    mixed = zuul.submit(["small", "large"])   # no single pool serves it
    zuul.wait_state(mixed, {"failed"})
    held = zuul.submit(["large"])
    (node_id,) = zuul.wait_state(held, {"fulfilled"})["nodes"]
    zuul.accept(held)
    zuul.release([node_id], state="hold")

    expect = {"ready": 1, "hold": 1}
    for state in NODE_STATES:
        value = str(expect.get(state, 0))
        collector.wait_value(f"nodepool.nodes.{state}", value)
        collector.wait_value(f"nodepool.provider.{PROVIDER}.nodes.{state}",
                             value)
    collector.wait_value("nodepool.label.small.nodes.ready", "1")
    collector.wait_value("nodepool.label.large.nodes.hold", "1")
    for state in NODE_STATES:
        if state != "ready":
            collector.wait_value(f"nodepool.label.small.nodes.{state}", "0")
        if state != "hold":
            collector.wait_value(f"nodepool.label.large.nodes.{state}", "0")
    prefix = f"nodepool.provider.{PROVIDER}.pool"
    collector.wait_value(f"{prefix}.main.addressable_requests", "1")
    collector.wait_value(f"{prefix}.other.addressable_requests", "0")


def test_only_the_election_leader_sends_node_gauges(env):
    first, second = Collector(), Collector()
    try:
        env.write_config([fake_provider()])
        a = env.start_launcher(stats=get_client(first.env()))
        wait_for(a.stats_election.leading.is_set, what="first leads")
        b = env.start_launcher(stats=get_client(second.env()))
        first.wait_rounds("nodepool.nodes.ready", 3)
        assert not b.stats_election.leading.is_set()
        assert second.values("nodepool.nodes.ready", "g") == []
        # The leader stops: the other launcher takes over the gauges.
        a.stop()
        env.launchers.remove(a)
        wait_for(b.stats_election.leading.is_set, what="second leads")
        second.wait_rounds("nodepool.nodes.ready", 1)
    finally:
        first.close()
        second.close()


# -- per-pass gauges: max_servers and tenant limits ------------------------

def test_max_servers_and_tenant_limit_gauges(env, collector):
    unlimited = fake_provider(name="unlimited", pools=[
        {"name": "main", "labels": [{"name": "small",
                                     "cloud-image": "fake-image"}]}])
    env.write_config(
        [two_pool_provider(), unlimited],
        **{"tenant-resource-limits": [
            {"tenant-name": "tenant.one", "max-servers": 2,
             "max-cores": 8, "L-1216C47A": 64}]})
    env.start_launcher()
    collector.wait_value(f"nodepool.provider.{PROVIDER}.max_servers", "15")
    collector.wait_value("nodepool.tenant_limits.tenant_one.instances", "2")
    collector.wait_value("nodepool.tenant_limits.tenant_one.cores", "8")
    collector.wait_value("nodepool.tenant_limits.tenant_one.L-1216C47A",
                         "64")
    collector.wait_rounds(f"nodepool.provider.{PROVIDER}.max_servers", 2)
    # Unlimited values are omitted, never sent as "inf".
    assert collector.values("nodepool.provider.unlimited.max_servers",
                            "g") == []
    assert collector.values("nodepool.tenant_limits.tenant_one.ram",
                            "g") == []
    assert not [line for line in collector.snapshot() if "inf" in line]
