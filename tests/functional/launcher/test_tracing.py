"""Traces (nodepool.launcher.tracing) as a collector receives them.

The launcher exports over OTLP/HTTP to a receiver the test starts
(``tests.functional.otlp``), which decodes every protobuf request; the
fake cloud's instances are keyscanned against the test sshd, so every
launch has a create call, a boot wait and a keyscan.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from nodepool.driver import fake
from nodepool.driver.errors import LaunchError
from nodepool.launcher import tracing
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.otlp import OTLPReceiver

pytestmark = pytest.mark.functional

BURST = 30
ZUUL_TRACE = 0x5b8efff798038103d269b633813fc60c
ZUUL_SPAN = 0xeee19b7ec3c1b174


@pytest.fixture
def receiver():
    r = OTLPReceiver().start()
    yield r
    r.stop()


def traced(monkeypatch, endpoint: str, **extra) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME",
                 "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def provider(port: int, **extra) -> dict:
    return fake_provider(**{
        "cloud-images": [{"name": "fake-image", "username": "zuul",
                          "connection-port": port}],
        "pools": [{"name": "main", "max-servers": BURST + 10,
                   "host-key-checking": True,
                   "labels": [{"name": "small",
                               "cloud-image": "fake-image"}]}],
        "boot-time": 0.5, **extra})


def by_id(spans) -> dict:
    return {s.span_id: s for s in spans}


def test_requests_launches_and_deletes_are_traced(env, receiver, sshd,
                                                  monkeypatch):
    traced(monkeypatch, receiver.endpoint)
    env.write_config([provider(sshd.port)])
    # The first create call fails: that launch takes two attempts.
    fake.cloud_for("fake-provider").create_errors = [
        LaunchError("injected create failure")]
    launcher = env.start_launcher()
    assert launcher.tracer.enabled
    zuul_span = {"name": "RequestNodes", "trace_id": ZUUL_TRACE,
                 "span_id": ZUUL_SPAN, "trace_flags": 1,
                 "start_time": time.time(), "parent": None}
    rids = [env.zuul.submit(["small"],
                            extra={"span_info": zuul_span} if i == 0
                            else None) for i in range(BURST)]
    nodes = {}
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=90)
        assert req["state"] == "fulfilled", req
        nodes[rid] = req["nodes"][0]

    requests = wait_for(lambda: (len(receiver.named("nodepool.request"))
                                 >= BURST and receiver.named(
                                     "nodepool.request")),
                        timeout=30, what="request spans")
    launches = wait_for(lambda: (len(receiver.named("nodepool.launch"))
                                 >= BURST and receiver.named(
                                     "nodepool.launch")),
                        timeout=30, what="launch spans")
    assert len(requests) == len(launches) == BURST
    assert {s.resource["service.name"] for s in requests} == \
        {"nodepool-launcher"}

    request_of = {s.attributes["nodepool.request.id"]: s for s in requests}
    assert set(request_of) == set(rids)
    for rid, span in request_of.items():
        assert span.attributes["nodepool.provider"] == "fake-provider"
        assert span.attributes["nodepool.pool"] == "main"
        assert span.attributes["nodepool.request.labels"] == ("small",)
        assert span.attributes["nodepool.request.state"] == "fulfilled"
        assert span.attributes["nodepool.request.nodes"] == (nodes[rid],)
        assert not span.failed and span.start <= span.end
    # Zuul's RequestNodes span is the parent of its request's span; the
    # others start traces of their own.
    first = request_of[rids[0]]
    assert (first.trace_id, first.parent_id) == \
        (f"{ZUUL_TRACE:032x}", f"{ZUUL_SPAN:016x}")
    assert all(request_of[rid].parent_id == "" for rid in rids[1:])

    for launch in launches:
        attrs = launch.attributes
        parent = request_of[attrs["nodepool.request.id"]]
        assert (launch.trace_id, launch.parent_id) == \
            (parent.trace_id, parent.span_id)
        assert attrs["nodepool.node.id"] == nodes[attrs["nodepool.request.id"]]
        assert attrs["nodepool.provider"] == "fake-provider"
        assert attrs["nodepool.pool"] == "main"
        assert attrs["nodepool.label"] == "small"
        assert attrs["nodepool.launch.result"] == "ready"
        assert attrs["nodepool.instance.id"].startswith("fake-")
        assert parent.start <= launch.start <= launch.end <= parent.end

    steps = [s for s in receiver.spans
             if s.name.startswith("nodepool.launch.")]
    launch_spans = by_id(launches)
    retried = [s for s in launches
               if s.attributes["nodepool.launch.attempts"] == 2]
    assert len(retried) == 1, [s.attributes for s in launches]
    for launch in launches:
        mine = sorted((s for s in steps if s.parent_id == launch.span_id),
                      key=lambda s: (s.start, s.end))
        names = [s.name.rsplit(".", 1)[1] for s in mine]
        if launch in retried:
            assert names == ["create", "create", "boot", "keyscan"], names
            assert "injected create failure" in mine[0].error
            assert [s.attributes["nodepool.launch.attempt"]
                    for s in mine] == [1, 2, 2, 2]
        else:
            assert names == ["create", "boot", "keyscan"], names
        assert all(s.trace_id == launch.trace_id for s in mine)
        for before, after in zip(mine, mine[1:]):
            assert before.end <= after.start
        assert launch.start <= mine[0].start and mine[-1].end <= launch.end
        assert not any(s.failed for s in mine[-3:])
        # boot-time is 0.5 s from the instance's creation, which lies
        # within the last create span: the boot wait ends no sooner than
        # 0.5 s after that span began, however late the loop polled
        # (10 ms for the wall clock against the cloud's monotonic one).
        assert mine[-2].end - mine[-3].start >= 490_000_000
    assert all(s.parent_id in launch_spans for s in steps)

    # Nothing was deleted yet; deletes come once Zuul is done with the nodes.
    assert receiver.named("nodepool.delete") == []
    used_at = time.time_ns()
    for rid in rids:
        held = env.zuul.accept(rid)
        env.zuul.set_in_use(held)
        env.zuul.release(held)
    for node_id in nodes.values():
        env.zuul.wait_node_gone(node_id, timeout=30)
    deletes = wait_for(lambda: (len(receiver.named("nodepool.delete"))
                                >= BURST and receiver.named(
                                    "nodepool.delete")),
                       timeout=30, what="delete spans")
    request_by_node = {node: rid for rid, node in nodes.items()}
    assert sorted(s.attributes["nodepool.node.id"] for s in deletes) == \
        sorted(nodes.values())
    for span in deletes:
        attrs = span.attributes
        assert span.start >= used_at and not span.failed
        assert span.parent_id == ""        # a trace of its own
        assert attrs["nodepool.request.id"] == \
            request_by_node[attrs["nodepool.node.id"]]
        assert attrs["nodepool.provider"] == "fake-provider"
        assert attrs["nodepool.pool"] == "main"
        assert attrs["nodepool.label"] == "small"
        assert attrs["nodepool.instance.id"].startswith("fake-")
    assert launcher.tracer.dropped == launcher.tracer.failed == 0


def test_tracing_is_off_without_otel_traces_exporter(env, receiver,
                                                     monkeypatch):
    # An endpoint alone turns nothing on.
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    assert launcher.tracer is tracing.NULL
    rid = env.zuul.submit(["small"] * 3)
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    nodes = env.zuul.accept(rid)
    env.zuul.release(nodes)
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id, timeout=15)
    launcher.stop()
    assert receiver.requests == 0 and receiver.spans == []


@pytest.fixture
def blackhole():
    """A port that takes connections into its backlog and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def burst_seconds(env) -> float:
    began = time.monotonic()
    rids = [env.zuul.submit(["small"]) for _ in range(BURST)]
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
        assert req["state"] == "fulfilled", req
    return time.monotonic() - began


def test_an_unreachable_collector_does_not_slow_launches(
        env, blackhole, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="nodepool.tracing")
    env.write_config([fake_provider(pools=[{
        "name": "main", "max-servers": 2 * BURST + 10,
        "labels": [{"name": "small", "cloud-image": "fake-image"}]}])])
    # Each export waits 30 s for an answer that never comes; 16 spans fit
    # in the queue, a burst makes ~100.  (Traced first: the cold start
    # counts against tracing, not for it.)
    traced(monkeypatch, blackhole, OTEL_EXPORTER_OTLP_TIMEOUT="30",
           OTEL_BSP_MAX_QUEUE_SIZE="16")
    launcher = env.start_launcher()
    assert launcher.tracer.enabled
    with_tracing = burst_seconds(env)
    wait_for(lambda: launcher.tracer.dropped > 0, what="spans dropped")
    began = time.monotonic()
    launcher.stop()
    env.launchers.remove(launcher)
    assert time.monotonic() - began < tracing.SHUTDOWN_TIMEOUT + 5
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "nodepool.tracing"]
    assert any("dropped" in w and blackhole in w for w in warnings), warnings

    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    plain = env.start_launcher()
    assert plain.tracer is tracing.NULL
    untraced = burst_seconds(env)
    # Were an export on the request path, one request would take 30 s.
    assert with_tracing < untraced + 10, (with_tracing, untraced)
