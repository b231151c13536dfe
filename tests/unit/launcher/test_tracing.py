"""nodepool.launcher.tracing without a launcher: when it is on, what a bad
variable says, Zuul's span_info, the launch steps, drops and their count."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter)
from opentelemetry.trace import StatusCode

from nodepool.launcher import tracing
from nodepool.zk.models import Node, NodeRequest


@pytest.mark.parametrize("environ", [
    {},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    {"OTEL_TRACES_EXPORTER": "none"},
    {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
])
def test_off_unless_an_exporter_is_named(environ):
    assert tracing.from_env(environ) is tracing.NULL


@pytest.mark.parametrize("environ, variable", [
    ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "lots"},
     "OTEL_BSP_MAX_QUEUE_SIZE"),
])
def test_a_bad_variable_is_named(environ, variable):
    with pytest.raises(tracing.TracingError) as info:
        tracing.from_env(environ)
    assert str(info.value).startswith(variable + ":")
    assert "\n" not in str(info.value)


def test_off_imports_no_opentelemetry():
    code = ("import sys\n"
            "from nodepool.launcher import launcher, tracing\n"
            "assert tracing.from_env({}) is tracing.NULL\n"
            "print(sorted(m for m in sys.modules"
            " if m.startswith('opentelemetry')))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_null_hooks_do_nothing():
    null = tracing.NULL
    trace = null.request(NodeRequest(id="100-1"), "p", "main")
    with trace.current():
        trace.declined("why")
    assert null.launch(None, None, None, None) is null
    trace.end(NodeRequest(id="100-1"), lost="gone")
    assert null.delete(None, "p", "i-1") is null
    assert (null.dropped, null.failed) == (0, 0)


def test_endpoint_is_logged_without_credentials():
    assert tracing.endpoint_for_log({}) == "http://localhost:4318/v1/traces"
    assert tracing.endpoint_for_log({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:secret@otel:4318/"}) \
        == "https://otel:4318/v1/traces"
    assert tracing.endpoint_for_log({
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/x"}) == "http://c/x"


@pytest.mark.parametrize("span_info", [
    None, "abc", {"trace": "abc"}, {"trace_id": "1", "span_id": 2,
                                    "trace_flags": 1},
    {"trace_id": 0, "span_id": 2, "trace_flags": 1},
    {"trace_id": 1, "span_id": 2 ** 64, "trace_flags": 1},
    {"trace_id": True, "span_id": 2, "trace_flags": 1},
])
def test_malformed_zuul_span_info_is_ignored(span_info):
    assert tracing.zuul_parent(span_info) is None


def make_tracer(*exporters, **environ):
    return tracing.Tracer(list(exporters), environ)


def test_zuul_span_info_is_the_request_span_parent():
    memory = InMemorySpanExporter()
    tracer = make_tracer(memory)
    request = NodeRequest(id="100-0000000001", node_types=["small"],
                          state="failed")
    request.extra = {"span_info": {"trace_id": 7, "span_id": 9,
                                   "trace_flags": 1, "name": "RequestNodes"}}
    trace = tracer.request(request, "p", "main")
    trace.declined("node type(s) [small] not available")
    trace.end(request)
    trace.end(request)       # once only
    tracer.shutdown()
    (span,) = memory.get_finished_spans()
    assert (span.context.trace_id, span.parent.span_id) == (7, 9)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "node type(s) [small] not available"
    assert span.attributes["nodepool.request.state"] == "failed"


class FakeLauncher(SimpleNamespace):
    """What LaunchTrace reads of a NodeLaunch."""

    @property
    def done(self):
        return self.outcome.value != "running"

    def advance(self):
        for key, value in self.change.items():
            setattr(self, key, value)
        return self.done


def phase(value):
    return SimpleNamespace(value=value)


def test_launch_steps_and_a_failed_attempt():
    memory = InMemorySpanExporter()
    tracer = make_tracer(memory)
    node = Node(id="0000000007", provider="p", pool="main", type=["small"])
    info = SimpleNamespace(id="100-0000000001")
    trace = tracer.launch(node, SimpleNamespace(name="main"),
                          SimpleNamespace(name="small"), info)
    launcher = FakeLauncher(attempt=1, phase=phase("create"), node=node,
                            keyscan_future=None, outcome=phase("running"),
                            error=None)

    def step(**change):
        launcher.change = change
        assert trace.advance(launcher) is launcher.done

    step()                                   # create call submitted
    node.external_id = "i-1"
    step()                                   # the cloud named it: boot
    node.external_id = None                  # attempt failed: a new one
    step(attempt=2, error="boot-timeout exceeded")
    node.external_id = "i-2"
    step(phase=phase("keyscan"))             # running, record written
    step(keyscan_future=object())            # keyscan started
    step(outcome=phase("failed"), phase=phase("done"),
         error="keyscan failed: refused")
    tracer.shutdown()
    spans = memory.get_finished_spans()
    launch = next(s for s in spans if s.name == "nodepool.launch")
    steps = sorted((s for s in spans if s is not launch),
                   key=lambda s: s.start_time)
    assert [(s.name, s.attributes["nodepool.launch.attempt"])
            for s in steps] == [
        ("nodepool.launch.create", 1), ("nodepool.launch.boot", 1),
        ("nodepool.launch.create", 2), ("nodepool.launch.boot", 2),
        ("nodepool.launch.keyscan", 2)]
    assert all(s.parent.span_id == launch.context.span_id for s in steps)
    assert steps[1].status.description == "boot-timeout exceeded"
    assert steps[4].status.description == "keyscan failed: refused"
    assert launch.status.status_code is StatusCode.ERROR
    assert launch.attributes["nodepool.launch.result"] == "failed"
    assert launch.attributes["nodepool.launch.attempts"] == 2
    assert launch.attributes["nodepool.instance.id"] == "i-2"
    assert launch.attributes["nodepool.node.id"] == "0000000007"
    assert launch.attributes["nodepool.request.id"] == "100-0000000001"


class StuckExporter(SpanExporter):
    """Never answers until released: a collector that is down."""

    def __init__(self):
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans):
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.FAILURE


def test_a_full_queue_drops_and_counts_and_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="nodepool.tracing")
    stuck = StuckExporter()
    tracer = make_tracer(stuck, OTEL_BSP_MAX_QUEUE_SIZE="4")
    for i in range(40):
        tracer.tracer.start_span(f"s{i}").end()
    # At most 4 in the exporter's hands and 4 queued: the rest dropped.
    assert 32 <= tracer.dropped <= 36

    def warnings():
        return [r.getMessage() for r in caplog.records
                if r.name == "nodepool.tracing"]
    assert len(warnings()) == 1          # once a minute at most
    assert "span(s) dropped" in warnings()[0]
    stuck.release.set()
    tracer.shutdown()
    assert tracer.dropped + stuck.exported == 40
    assert tracer.failed == stuck.exported
    # What was not told yet is told at shutdown.
    assert len(warnings()) == 2
    assert f"({tracer.dropped} and {tracer.failed} in all)" in warnings()[1]
