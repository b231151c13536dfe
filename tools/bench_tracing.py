"""What the tracing hooks cost one request, off and on.

Runs the hooks of ``nodepool.launcher.tracing`` exactly as the request path
calls them for one single-node request -- the request span, three handler
actions run inside ``current()``, the launch span, ``--advances`` provider
loop steps (the launch's create, boot and keyscan spans among them), the
request's end and the node's delete -- without ZooKeeper or a cloud, and
prints the time per request with tracing off (``NULL``) and on (spans made
and handed to a batch processor whose exporter drops them), against the
same loop with no hooks at all.

    python -m tools.bench_tracing [--requests N] [--advances N]
"""

from __future__ import annotations

import argparse
import timeit
from types import SimpleNamespace

from nodepool.launcher import tracing
from nodepool.zk.models import Node, NodeRequest


class _Phase:
    def __init__(self, value: str):
        self.value = value


class _Launcher:
    """The attributes LaunchTrace reads of a NodeLaunch."""

    def __init__(self, node, advances: int = 0):
        self.node = node
        self.advances = advances
        self.step = 0
        self.attempt = 1
        self.phase = _Phase("create")
        self.keyscan_future = None
        self.outcome = _Phase("running")
        self.error = None
        self.done = False

    def advance(self) -> bool:
        # create for a third of the steps, boot, then keyscan, then ready
        i, advances = self.step, self.advances
        if i == advances // 3:
            self.node.external_id = "i-1"
        elif i == 2 * advances // 3:
            self.phase = _Phase("keyscan")
            self.keyscan_future = object()
        elif i == advances - 1:
            self.outcome, self.phase = _Phase("ready"), _Phase("done")
            self.done = True
        return self.done


POOL = SimpleNamespace(name="main")
LABEL = SimpleNamespace(name="small")


def one_request(tracer, advances: int) -> None:
    request = NodeRequest(id="100-0000000001", node_types=["small"],
                          requestor="zuul")
    trace = tracer.request(request, "p", "main")
    node = Node(id="0000000001", provider="p", pool="main", type=["small"])
    with trace.current():
        launch = tracer.launch(node, POOL, LABEL, request)
    launcher = _Launcher(node, advances)
    # As ProviderManager._advance_all: NULL launches are not kept.
    traces = {} if launch is tracing.NULL else {launcher: launch}
    for i in range(advances):
        launcher.step = i
        stepper = traces.get(launcher)
        if stepper is None:
            launcher.advance()
        else:
            stepper.advance(launcher)
    for _ in range(2):              # check/fulfil actions
        with trace.current():
            pass
    request.state, request.nodes = "fulfilled", [node.id]
    trace.end(request)
    tracer.delete(node, "p", "i-1").end()


def no_hooks(advances: int) -> None:
    request = NodeRequest(id="100-0000000001", node_types=["small"],
                          requestor="zuul")
    node = Node(id="0000000001", provider="p", pool="main", type=["small"])
    launcher = _Launcher(node, advances)
    for i in range(advances):
        launcher.step = i
        launcher.advance()
    request.state, request.nodes = "fulfilled", [node.id]


def per_request_us(fn, requests: int) -> float:
    best = min(timeit.repeat(fn, number=requests, repeat=5))
    return best / requests * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--advances", type=int, default=50,
                        help="provider loop steps per launch (default 50:"
                        " 1 s of a launch at the busy loop's 20 ms)")
    args = parser.parse_args(argv)
    from opentelemetry.sdk.trace.export import (SpanExporter,
                                                SpanExportResult)

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    on = tracing.Tracer([Discard()], {"OTEL_BSP_MAX_QUEUE_SIZE": "100000"})
    base = per_request_us(lambda: no_hooks(args.advances), args.requests)
    off = per_request_us(lambda: one_request(tracing.NULL, args.advances),
                         args.requests)
    traced = per_request_us(lambda: one_request(on, args.advances),
                            args.requests)
    on.shutdown()
    null, empty, launcher = tracing.NULL, {}, object()
    request = NodeRequest(id="100-0000000001", node_types=["small"])

    def loop_step():    # what the provider loop adds to each advance
        return empty.get(launcher) is None

    def action():       # what the pool worker adds to each handler action
        with null.current():
            pass

    def ends():         # request, launch and delete hand-over and ends
        null.request(request, "p", "main").end(request)
        null.launch(None, POOL, LABEL, request)
        null.delete(None, "p", "i-1").end()

    hooks = [(name, min(timeit.repeat(fn, number=100000, repeat=5))
              / 100000 * 1e9) for name, fn in (
                  ("loop step", loop_step), ("handler action", action),
                  ("request/launch/delete", ends))]
    print(f"per request, {args.advances} loop steps per launch "
          f"(best of 5 x {args.requests}):")
    print(f"  no hooks     {base:8.2f} us")
    print(f"  tracing off  {off:8.2f} us  (hooks: {off - base:+.2f} us, "
          f"{(off - base) * 1000 / (args.advances + 7):.0f} ns a hook call)")
    print(f"  tracing on   {traced:8.2f} us  (spans: {traced - base:+.2f} us;"
          f" dropped {on.dropped})")
    print("tracing off, each hook (best of 5 x 100000):")
    for name, ns in hooks:
        print(f"  {name:22s} {ns:6.0f} ns")
    loop, act, ends_ns = (ns for _, ns in hooks)
    print(f"  one request: {(args.advances * loop + 3 * act + ends_ns) / 1000:.2f}"
          f" us ({args.advances} loop steps, 3 actions)")


if __name__ == "__main__":
    main()
