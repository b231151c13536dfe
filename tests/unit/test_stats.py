"""Pure metric building of nodepool.stats (no network).

The wire format over a real UDP socket is checked in
tests/functional/test_statsd_wire.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodepool.stats import (NODE_STATES, NullStatsReporter, StatsReporter,
                            get_client, launch_metrics, node_gauge_metrics,
                            sanitize)


def test_sanitize():
    assert sanitize("zuul.example.org:8080") == "zuul_example_org_8080"
    assert sanitize("plain-name") == "plain-name"


def test_launch_metrics_all_keys():
    metrics = launch_metrics("aws", "us-east-1a", "zuul.example.org",
                             "ready", 1.5)
    keys = ["nodepool.launch.ready",
            "nodepool.launch.provider.aws.ready",
            "nodepool.launch.provider.aws.us-east-1a.ready",
            "nodepool.launch.requestor.zuul_example_org.ready"]
    assert [m for m in metrics if m[0] == "c"] == [("c", k, 1) for k in keys]
    assert [m for m in metrics if m[0] == "ms"] == [
        ("ms", k, 1500.0) for k in keys]


def test_launch_metrics_without_az_and_requestor():
    metrics = launch_metrics("os", None, None, "error.quota", 0.25)
    assert {key for _, key, _ in metrics} == {
        "nodepool.launch.error.quota",
        "nodepool.launch.provider.os.error.quota"}


def test_node_states_match_spec():
    assert len(NODE_STATES) == len(set(NODE_STATES)) == 11
    node_module = pytest.importorskip("nodepool.zk.node")
    assert set(NODE_STATES) == set(node_module.NodeState.ALL)


def test_node_gauges_count_every_state():
    nodes = [
        {"state": "ready", "provider": "p1", "type": ["small"]},
        {"state": "ready", "provider": "p1", "type": ["small", "big"]},
        SimpleNamespace(state="in-use", provider="p2", type=["big"]),
        SimpleNamespace(state="building", provider="gone", type="legacy"),
    ]
    gauges = {key: value for kind, key, value
              in node_gauge_metrics(nodes, ["p1", "p2", "p3"],
                                    ["small", "big"])
              if kind == "g"}
    assert gauges["nodepool.nodes.ready"] == 2
    assert gauges["nodepool.nodes.in-use"] == 1
    assert gauges["nodepool.nodes.deleted"] == 0
    assert gauges["nodepool.provider.p1.nodes.ready"] == 2
    assert gauges["nodepool.provider.p3.nodes.ready"] == 0
    assert gauges["nodepool.provider.gone.nodes.building"] == 1
    assert gauges["nodepool.label.small.nodes.ready"] == 2
    assert gauges["nodepool.label.big.nodes.ready"] == 1
    assert gauges["nodepool.label.big.nodes.in-use"] == 1
    assert gauges["nodepool.label.legacy.nodes.building"] == 1
    # Every state for totals, 4 providers and 3 labels, nothing else.
    assert len(gauges) == len(NODE_STATES) * (1 + 4 + 3)
    for state in NODE_STATES:
        assert gauges[f"nodepool.provider.p2.nodes.{state}"] == (
            1 if state == "in-use" else 0)


def test_node_gauges_empty():
    metrics = node_gauge_metrics([], [], [])
    assert [key for _, key, _ in metrics] == [
        f"nodepool.nodes.{s}" for s in NODE_STATES]
    assert all(value == 0 for _, _, value in metrics)


def test_get_client_disabled_without_env():
    reporter = get_client({})
    assert isinstance(reporter, NullStatsReporter)
    assert not reporter.enabled
    # Every method exists and does nothing.
    reporter.launch_result("p", "az", "r", "ready", 1.0)
    reporter.node_gauges([{"state": "ready"}], ["p"], ["l"])
    reporter.tenant_limits("t", {"cores": 1})


def test_get_client_enabled_by_either_variable():
    for env in ({"STATSD_HOST": "127.0.0.1"}, {"STATSD_PORT": "9125"}):
        reporter = get_client(env)
        assert type(reporter) is StatsReporter and reporter.enabled
        reporter.close()
        reporter.close()
