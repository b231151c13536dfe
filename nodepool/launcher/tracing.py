"""Traces of requests, launches and deletes (OpenTelemetry), off by default.

``from_env()`` reads the standard ``OTEL_*`` variables once, at launcher
start.  Tracing is on only when ``OTEL_TRACES_EXPORTER`` names an exporter
(``otlp``: OTLP over HTTP/protobuf, ``console``: stdout) and
``OTEL_SDK_DISABLED`` is not ``true``; otherwise it returns ``NULL``, whose
every method does nothing and which never imports OpenTelemetry -- the
hooks in the request path cost one method call each.  The SDK reads the
rest itself: ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``, ``..._HEADERS``,
``..._TIMEOUT``, ``..._CERTIFICATE``, ``OTEL_SERVICE_NAME`` (default
``nodepool-launcher``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
and the ``OTEL_BSP_*`` batch settings.

The spans (names and attributes are listed in doc/source/tracing.rst)::

    nodepool.request          claim -> fulfilled / failed / given back
    +-- nodepool.launch       one per node launched for it
        +-- nodepool.launch.create    the cloud's create call
        +-- nodepool.launch.boot      until the instance runs
        +-- nodepool.launch.keyscan   until its host keys (or port) answer
        +-- nodepool.delete           the instance of a failed attempt
    nodepool.delete           a node's delete (a trace of its own)

A request that carries Zuul's ``span_info`` (its "RequestNodes" span)
continues Zuul's trace; a malformed one is ignored.

Failure story: tracing must never slow or fail a launch.  Ended spans go
into a bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048) that one
SDK thread exports in batches; when the queue is full a span is dropped
and counted, and an export that fails (endpoint down, refused, slow: it
waits at most ``OTEL_EXPORTER_OTLP_TIMEOUT``) loses its batch and is
counted.  Both counts are logged as one warning a minute at most
(``nodepool.tracing``); the SDK exporter's own per-batch lines are kept
quiet unless the logging config asks for them.  ``shutdown`` flushes for at
most a few seconds, then leaves what is left.  A bad ``OTEL_*`` value that
we read is a ``TracingError`` at start naming the variable.

Threads: a request span is started on the pool worker's I/O thread that
takes the request and ended by whichever thread finishes the handler (an
I/O thread, or the ZooKeeper event thread when the session is lost; ending
is idempotent under a lock).  A launch span is started on that I/O thread
when the launch is handed over, with the request span as its explicit
parent (``RequestTrace.current`` makes it current there); from then on only
the provider's loop thread touches it, in ``LaunchTrace.advance`` (which
runs ``NodeLaunch.advance``).  Delete spans are started by the thread that
hands the delete in and ended by the provider's loop thread.  Export runs
on the SDK's ``OtelBatchSpanRecordProcessor`` thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from typing import Any, Callable, Mapping

__all__ = ["NULL", "NullTrace", "Tracer", "TracingError", "from_env",
           "zuul_parent"]

log = logging.getLogger("nodepool.tracing")

EXPORTERS = frozenset({"otlp", "console"})
DEFAULT_SERVICE = "nodepool-launcher"
DEFAULT_QUEUE = 2048
DEFAULT_BATCH = 512
# Drops and failed exports are told once per this many seconds at most.
WARN_INTERVAL = 60.0
SHUTDOWN_TIMEOUT = 5.0


class TracingError(ValueError):
    """An ``OTEL_*`` variable nodepool reads has a value it cannot use."""


class NullTrace:
    """Tracing off: every hook does nothing (and costs one call)."""

    enabled = False
    dropped = failed = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    # Tracer
    def request(self, request, provider: str, pool: str) -> "NullTrace":
        return self

    def launch(self, node, pool, label, request) -> "NullTrace":
        return self

    def delete(self, node, provider: str, external_id) -> "NullTrace":
        return self

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        return None

    # RequestTrace / LaunchTrace / DeleteTrace
    def current(self) -> "NullTrace":
        return self

    def declined(self, reason: str) -> None:
        return None

    def end(self, *args, **kw) -> None:
        return None


NULL = NullTrace()


def _enabled_exporters(environ: Mapping[str, str]) -> list[str]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in
             environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter(s) {unknown} "
            f"(nodepool knows {sorted(EXPORTERS)} and none)")
    if "otlp" in names:
        protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                    or "http/protobuf").strip()
        if protocol != "http/protobuf":
            raise TracingError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not "
                "supported (nodepool exports OTLP over http/protobuf)")
    return names


def _int_var(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise TracingError(f"{name}: {raw!r} is not a positive integer")
    return value


def endpoint_for_log(environ: Mapping[str, str]) -> str:
    """The traces endpoint the OTLP exporter uses, without credentials."""
    url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url:
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() \
            or "http://localhost:4318"
        url = base.rstrip("/") + "/v1/traces"
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def from_env(environ: Mapping[str, str] | None = None):
    """``NULL`` unless the environment turns tracing on, else a ``Tracer``
    (raises ``TracingError`` naming a bad variable)."""
    environ = os.environ if environ is None else environ
    names = _enabled_exporters(environ)
    if not names:
        return NULL
    return Tracer(names, environ)


def zuul_parent(span_info: Any):
    """The remote parent context of Zuul's ``span_info`` (its
    ``startSavedSpan`` dict: ``trace_id``, ``span_id``, ``trace_flags``
    as integers), or None when it is missing or malformed."""
    if not isinstance(span_info, dict):
        return None
    ids = [span_info.get(k) for k in ("trace_id", "span_id", "trace_flags")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        return None
    trace_id, span_id, flags = ids
    if not (0 < trace_id < 2 ** 128 and 0 < span_id < 2 ** 64
            and 0 <= flags < 256):
        return None
    from opentelemetry import trace
    context = trace.SpanContext(trace_id, span_id, is_remote=True,
                                trace_flags=trace.TraceFlags(flags))
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


class _Accounting:
    """Counts what never reached the collector; warns once a minute."""

    def __init__(self, endpoint: str, clock: Callable[[], float]):
        self.endpoint = endpoint
        self.clock = clock
        self.dropped = 0
        self.failed = 0
        self._told = (0, 0)
        self._last_warning = -WARN_INTERVAL
        self._lock = threading.Lock()

    def add(self, dropped: int = 0, failed: int = 0,
            final: bool = False) -> None:
        """Count; warn unless we did less than a minute ago (``final``:
        at shutdown, whatever was not told yet)."""
        with self._lock:
            self.dropped += dropped
            self.failed += failed
            now = self.clock()
            new = (self.dropped - self._told[0], self.failed - self._told[1])
            if not any(new) or (not final and now - self._last_warning
                                < WARN_INTERVAL):
                return
            self._last_warning = now
            self._told = (self.dropped, self.failed)
        log.warning("Tracing: %d span(s) dropped (export queue full) and %d "
                    "failed to export to %s since the last report (%d and %d "
                    "in all); launches are not affected", new[0], new[1],
                    self.endpoint, self.dropped, self.failed)


def _bounded_processor(exporter, queue_size: int, batch_size: int,
                       accounting: _Accounting):
    """A ``BatchSpanProcessor`` that drops (and counts) past ``queue_size``
    spans waiting, and counts the spans of failed exports."""
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor, SpanExporter, SpanExportResult)

    waiting = [0]
    lock = threading.Lock()

    class CountingExporter(SpanExporter):
        def export(self, spans):
            with lock:
                waiting[0] -= len(spans)
            try:
                result = exporter.export(spans)
            except Exception:
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                accounting.add(failed=len(spans))
            return result

        def shutdown(self):
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return exporter.force_flush(timeout_millis)

    class Bounded(BatchSpanProcessor):
        def on_end(self, span) -> None:
            if not (span.context and span.context.trace_flags.sampled):
                return
            with lock:
                full = waiting[0] >= queue_size
                if not full:
                    waiting[0] += 1
            if full:
                accounting.add(dropped=1)
                return
            super().on_end(span)

    return Bounded(CountingExporter(), max_queue_size=queue_size,
                   max_export_batch_size=min(batch_size, queue_size))


def _quiet_exporter_logs() -> None:
    # The exporter logs every retry and failed batch; our accounting says
    # it once a minute.  An operator's logging config still wins.
    quiet = logging.getLogger("opentelemetry.exporter")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.CRITICAL)


def _resource(environ: Mapping[str, str]):
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    from nodepool.version import __version__
    resource = Resource.create({"service.version": __version__})
    if not environ.get("OTEL_SERVICE_NAME") and \
            resource.attributes.get(SERVICE_NAME, "").startswith(
                "unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE}))
    return resource


class Tracer:
    """Tracing on: makes the spans of the module docstring."""

    enabled = True

    def __init__(self, exporters: list, environ: Mapping[str, str],
                 clock: Callable[[], float] = time.monotonic):
        """``exporters``: names of ``EXPORTERS``, or SpanExporter objects
        (tests, benchmarks)."""
        from opentelemetry.sdk.trace import TracerProvider

        queue = _int_var(environ, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE)
        batch = _int_var(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                         DEFAULT_BATCH)
        self.accounting = _Accounting(endpoint_for_log(environ), clock)
        self.provider = TracerProvider(resource=_resource(environ))
        for exporter in exporters:
            if isinstance(exporter, str):
                exporter = _exporter(exporter)
            self.provider.add_span_processor(_bounded_processor(
                exporter, queue, batch, self.accounting))
        if "otlp" in exporters:
            _quiet_exporter_logs()
        self.tracer = self.provider.get_tracer("nodepool")
        log.info("Tracing on: exporting to %s", ", ".join(
            self.accounting.endpoint if n == "otlp" else str(n)
            for n in exporters))

    @property
    def dropped(self) -> int:
        return self.accounting.dropped

    @property
    def failed(self) -> int:
        return self.accounting.failed

    def _start(self, name: str, attributes: dict, parent=None):
        return self.tracer.start_span(
            name, context=parent,
            attributes={k: v for k, v in attributes.items()
                        if v is not None})

    def request(self, request, provider: str, pool: str) -> "RequestTrace":
        span = self._start("nodepool.request", {
            "nodepool.request.id": request.id,
            "nodepool.provider": provider,
            "nodepool.pool": pool,
            "nodepool.request.labels": tuple(request.node_types),
            "nodepool.request.requestor": request.requestor,
            "nodepool.request.tenant": request.tenant_name,
            "nodepool.request.event_id": request.event_id,
        }, zuul_parent(request.extra.get("span_info")))
        return RequestTrace(span)

    def launch(self, node, pool, label, request) -> "LaunchTrace":
        """Started on the thread handing the launch over: its current
        span (the request's) is the parent."""
        from opentelemetry import context
        span = self._start("nodepool.launch", {
            "nodepool.request.id": request.id,
            "nodepool.node.id": node.id,
            "nodepool.provider": node.provider,
            "nodepool.pool": pool.name,
            "nodepool.label": label.name,
        }, context.get_current())
        return LaunchTrace(self, span)

    def delete(self, node, provider: str, external_id) -> "DeleteTrace":
        from opentelemetry import context
        attributes = {"nodepool.provider": provider,
                      "nodepool.instance.id": _instance_id(external_id)}
        if node is not None:
            attributes.update({
                "nodepool.node.id": node.id, "nodepool.pool": node.pool,
                "nodepool.label": node.type[0] if node.type else None,
                "nodepool.request.id": node.allocated_to})
        return DeleteTrace(self._start("nodepool.delete", attributes,
                                       context.get_current()))

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Export what is queued, for at most ``timeout`` seconds."""
        done = threading.Thread(target=self.provider.shutdown,
                                name="tracing-shutdown", daemon=True)
        done.start()
        done.join(timeout)
        if done.is_alive():
            log.warning("Tracing: spans still queued after %.0fs at "
                        "shutdown were not exported", timeout)
        self.accounting.add(final=True)


def _exporter(name: str):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter)
    return OTLPSpanExporter()


def _instance_id(external_id) -> str | None:
    if external_id is None:
        return None
    if isinstance(external_id, dict):   # a driver's several resources
        return ",".join(f"{k}={v}" for k, v in sorted(external_id.items()))
    return str(external_id)


def _error(span, message: str | None) -> None:
    from opentelemetry.trace import Status, StatusCode
    span.set_status(Status(StatusCode.ERROR, message or None))


class RequestTrace:
    """The span of one request, from claim to its handler's end."""

    enabled = True

    def __init__(self, span):
        self.span = span
        self.reason: str | None = None
        self._ended = False
        self._lock = threading.Lock()

    def current(self):
        """Make the request span current on this thread (launches handed
        over meanwhile take it as their parent)."""
        from opentelemetry import trace
        return trace.use_span(self.span, end_on_exit=False,
                              record_exception=False,
                              set_status_on_exception=False)

    def declined(self, reason: str) -> None:
        self.reason = reason

    def end(self, request, lost: str | None = None) -> None:
        """The handler is done; ``request`` as it last wrote it (``lost``:
        it let go without writing, e.g. the session was lost)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        span = self.span
        span.set_attribute("nodepool.request.state", request.state or "")
        if request.nodes:
            span.set_attribute("nodepool.request.nodes",
                               tuple(request.nodes))
        if lost is not None:
            _error(span, lost)
        elif request.state == "failed":
            _error(span, self.reason)
        elif self.reason is not None:
            span.set_attribute("nodepool.request.declined", self.reason)
        span.end()


class LaunchTrace:
    """The span of one node launch and its steps' child spans.

    ``advance`` runs each ``NodeLaunch.advance`` on the provider's loop
    thread; after it, the launcher's state tells which step the launch is
    in (``create`` until the cloud names the instance, ``boot`` until the
    create machine completes, ``keyscan`` while the keyscan runs), and a
    change ends one child span and starts the next, both at the time the
    advance began (advances never block).
    """

    enabled = True

    def __init__(self, tracer: Tracer, span):
        self.tracer = tracer
        self.span = span
        self.attempt = 1
        self.name: str | None = None    # the open child span's step
        self.child = None

    def advance(self, launcher) -> bool:
        """``launcher.advance()``, its step recorded (see the class)."""
        from opentelemetry import context, trace
        began = time.time_ns()
        # Deletes handed in during the step (a failed attempt's instance)
        # become children of the launch.
        token = context.attach(trace.set_span_in_context(self.span))
        try:
            done = launcher.advance()
        finally:
            context.detach(token)
        try:
            self._observe(launcher, began)
        except Exception:   # tracing never fails a launch
            log.exception("Tracing: could not record the launch of node %s",
                          launcher.node.id)
        return done

    def _observe(self, launcher, now: int) -> None:
        if launcher.attempt != self.attempt:
            self._close(now, launcher.error)    # that attempt failed
            self.attempt = launcher.attempt
        if launcher.done:
            ready = launcher.outcome.value == "ready"
            self._close(now, None if ready else launcher.error)
            self._finish(launcher, now)
            return
        name = _step_name(launcher)
        if name != self.name:
            self._close(now)
            self._open(name, now)

    def _open(self, name: str | None, now: int) -> None:
        from opentelemetry import trace
        self.name = name
        if name is None:
            return
        self.child = self.tracer.tracer.start_span(
            f"nodepool.launch.{name}",
            context=trace.set_span_in_context(self.span),
            attributes={"nodepool.launch.attempt": self.attempt},
            start_time=now)

    def _close(self, now: int, error: str | None = None) -> None:
        if self.child is not None:
            if error is not None:
                _error(self.child, error)
            self.child.end(end_time=now)
        self.child = None
        self.name = None

    def _finish(self, launcher, now: int) -> None:
        span = self.span
        result = launcher.outcome.value
        span.set_attribute("nodepool.launch.result", result)
        span.set_attribute("nodepool.launch.attempts", launcher.attempt)
        if launcher.node.external_id is not None:
            span.set_attribute("nodepool.instance.id",
                               _instance_id(launcher.node.external_id))
        if result != "ready":
            _error(span, launcher.error)
        span.end(end_time=now)


def _step_name(launcher) -> str | None:
    phase = launcher.phase.value
    if phase == "create":
        return "create" if launcher.node.external_id is None else "boot"
    if phase == "keyscan":
        # Until the keyscan starts the instance record is being written.
        return "boot" if launcher.keyscan_future is None else "keyscan"
    return None


class DeleteTrace:
    """The span of one delete (a node's, or an instance's)."""

    enabled = True

    def __init__(self, span):
        self.span = span

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            _error(self.span, str(error))
        self.span.end()
