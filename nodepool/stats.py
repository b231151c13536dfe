"""Statsd metrics of cli.md §4: what the launcher reports, and how.

Reporting is on only when the environment has ``STATSD_HOST`` or
``STATSD_PORT`` (defaults ``localhost`` and 8125); otherwise ``get_client``
returns a ``NullStatsReporter`` with the same methods that sends nothing,
so callers never check.  Keys carry no prefix.

Failure story: statsd is UDP and fire-and-forget.  A missing or dead
collector costs nothing but lost metrics, and a send error is logged at
debug level and swallowed, because metrics must never fail a launch.  The
one loud failure is at start-up: ``get_client`` resolves ``STATSD_HOST``
once and raises ``socket.gaierror`` if it cannot, so a typo is noticed.

Each method builds its lines with a pure ``*_metrics`` function (unit
tested without a network) and sends them through one statsd pipeline, so
the lines of one call share datagrams (newline-separated, split at the
client's 512-byte limit).

    reporter = get_client()
    reporter.launch_result("aws-east", "us-east-1a", "zuul.example.org",
                           "ready", elapsed_s=93.2)

Threads: the module starts none.  One reporter is shared by the whole
launcher and called from many threads: the provider loops (launch results;
kazoo's connection thread for the ``error.zksession`` of a lost session),
the pool workers (limit gauges; queue timers through their wait books), the
stats election (node and request gauges), the cleanup worker (leaks) and the
quarantine's listener (whichever thread read the bad znode).  It takes no
lock: each call builds its own pipeline, and the client only does ``sendto``
on one shared UDP socket, which never waits for the collector.
``get_client`` runs once at start-up, ``close`` at shutdown.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import statsd

__all__ = [
    "NODE_STATES",
    "Metric",
    "NullStatsReporter",
    "StatsReporter",
    "get_client",
    "sanitize",
    "launch_metrics",
    "node_gauge_metrics",
]

log = logging.getLogger("nodepool.stats")

# Every node state of zookeeper.md §6.2; gauges report each one, zeros
# included, so a dashboard line drops to 0 instead of freezing.
NODE_STATES: tuple[str, ...] = (
    "init", "building", "testing", "ready", "in-use", "used", "hold",
    "deleting", "failed", "aborted", "deleted")

# (kind, key, value): kind is "c" (counter), "ms" (timer) or "g" (gauge).
Metric = tuple[str, str, float]


def sanitize(component: str) -> str:
    """Make a requestor, tenant or limit name one statsd key component."""
    return str(component).replace(".", "_").replace(":", "_")


def _finite(value: float | None) -> bool:
    # Unlimited values are omitted, never sent as "inf" (cli.md §4).
    return value is not None and math.isfinite(value)


def launch_metrics(provider: str, az: str | None, requestor: str | None,
                   result: str, elapsed_s: float) -> list[Metric]:
    """Counter and timer lines for one finished launch attempt."""
    keys = ["nodepool.launch",
            f"nodepool.launch.provider.{provider}"]
    if az:
        keys.append(f"nodepool.launch.provider.{provider}.{az}")
    if requestor:
        keys.append(f"nodepool.launch.requestor.{sanitize(requestor)}")
    elapsed_ms = max(elapsed_s, 0.0) * 1000.0
    metrics: list[Metric] = []
    for key in keys:
        metrics.append(("c", f"{key}.{result}", 1))
        metrics.append(("ms", f"{key}.{result}", elapsed_ms))
    return metrics


def _field(node: Any, name: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(name)
    return getattr(node, name, None)


def _labels_of(node: Any) -> list[str]:
    labels = _field(node, "type") or []
    # Old records store a single label as a plain string.
    return [labels] if isinstance(labels, str) else list(labels)


def node_gauge_metrics(nodes: Iterable[Any], providers: Iterable[str],
                       labels: Iterable[str]) -> list[Metric]:
    """Node-state gauges: totals, per provider and per label.

    Every state is reported for the totals and for every provider and
    label given (the configured ones) plus any seen on a node, so a
    provider that was just removed from the config still drops to 0.
    """
    totals: Counter[str] = Counter()
    by_provider: dict[str, Counter[str]] = {p: Counter() for p in providers}
    by_label: dict[str, Counter[str]] = {lb: Counter() for lb in labels}
    extra_states: list[str] = []
    for node in nodes:
        state = _field(node, "state")
        if not state:
            continue
        if state not in NODE_STATES and state not in extra_states:
            extra_states.append(state)
        totals[state] += 1
        provider = _field(node, "provider")
        if provider:
            by_provider.setdefault(provider, Counter())[state] += 1
        for label in _labels_of(node):
            by_label.setdefault(label, Counter())[state] += 1
    states = NODE_STATES + tuple(extra_states)
    metrics: list[Metric] = [
        ("g", f"nodepool.nodes.{s}", totals[s]) for s in states]
    for provider, counts in by_provider.items():
        metrics += [("g", f"nodepool.provider.{provider}.nodes.{s}",
                     counts[s]) for s in states]
    for label, counts in by_label.items():
        metrics += [("g", f"nodepool.label.{label}.nodes.{s}", counts[s])
                    for s in states]
    return metrics


class StatsReporter:
    """Sends the launcher's metrics to one statsd server over UDP.

    Thread-safe: each call builds its own pipeline, and the underlying
    client only does ``sendto`` on a shared UDP socket.
    """

    enabled = True

    def __init__(self, client: statsd.StatsClient | None) -> None:
        self._client = client

    def close(self) -> None:
        """Close the UDP socket; later calls send nothing."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # Raw helpers --------------------------------------------------------

    def send(self, metrics: Iterable[Metric]) -> None:
        """Send ``(kind, key, value)`` lines in one pipeline."""
        if self._client is None:
            return
        try:
            with self._client.pipeline() as pipe:
                for kind, key, value in metrics:
                    if not _finite(value):
                        continue
                    if kind == "c":
                        pipe.incr(key, _number(value))
                    elif kind == "ms":
                        pipe.timing(key, value)
                    elif kind == "g":
                        pipe.gauge(key, _number(value))
                    else:
                        raise ValueError(f"unknown metric kind {kind!r}")
        except OSError as e:
            log.debug("Could not send stats: %s", e)

    def incr(self, key: str, count: int = 1) -> None:
        self.send([("c", key, count)])

    def timing(self, key: str, ms: float) -> None:
        self.send([("ms", key, ms)])

    def gauge(self, key: str, value: float) -> None:
        self.send([("g", key, value)])

    # cli.md §4 metrics ---------------------------------------------------

    def launch_result(self, provider: str, az: str | None,
                      requestor: str | None, result: str,
                      elapsed_s: float) -> None:
        """One finished launch attempt; ``result`` is "ready" or
        "error.<kind>", ``elapsed_s`` runs from the first attempt's start."""
        self.send(launch_metrics(provider, az, requestor, result, elapsed_s))

    def node_gauges(self, nodes: Iterable[Any], providers: Iterable[str],
                    labels: Iterable[str]) -> None:
        """Node counts by state (stats leader only; see cli.md §4)."""
        if self._client is None:
            return
        self.send(node_gauge_metrics(nodes, providers, labels))

    def addressable_requests(self, provider: str, pool: str,
                             count: int) -> None:
        self.gauge(f"nodepool.provider.{provider}.pool.{pool}"
                   ".addressable_requests", count)

    def max_servers(self, provider: str, value: float | None) -> None:
        """Sum of the provider's pool max-servers; omitted when unlimited."""
        self.gauge(f"nodepool.provider.{provider}.max_servers", value)

    def tenant_limits(self, tenant: str,
                      limits: Mapping[str, float | None]) -> None:
        """One gauge per limit; unlimited ones are omitted."""
        self.send(("g", f"nodepool.tenant_limits.{sanitize(tenant)}."
                   f"{sanitize(name)}", value)
                  for name, value in limits.items())

    def request_queue(self, label: str, seconds: float) -> None:
        """A fulfilled request of ``label`` waited ``seconds`` from its
        creation (timer ``nodepool.label.<label>.request_queue``, ms)."""
        self.timing(f"nodepool.label.{label}.request_queue",
                    max(seconds, 0.0) * 1000.0)

    def leaked(self, provider: str, type_: str, count: int = 1) -> None:
        """A leaked resource was deleted; ``type_`` is plural ("instances")."""
        self.incr(f"nodepool.provider.{provider}.leaked.{type_}", count)

    def bad_record(self, kind: str) -> None:
        """A znode version was quarantined (not one of our records' shape);
        ``kind`` is ``node``, ``request``, ``component``, ``image`` or
        ``offering``."""
        self.incr(f"nodepool.zk.bad_records.{kind}")


class NullStatsReporter(StatsReporter):
    """What ``get_client`` returns when statsd is not configured."""

    enabled = False

    def __init__(self) -> None:
        super().__init__(None)


def _number(value: float) -> float | int:
    # "100|g" rather than "100.0|g" for whole numbers such as quota limits.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def get_client(env: Mapping[str, str] = os.environ) -> StatsReporter:
    """A reporter configured from ``STATSD_HOST``/``STATSD_PORT``, or a
    ``NullStatsReporter`` when neither is set."""
    if "STATSD_HOST" not in env and "STATSD_PORT" not in env:
        return NullStatsReporter()
    host = env.get("STATSD_HOST") or "localhost"
    port = int(env.get("STATSD_PORT") or 8125)
    return StatsReporter(statsd.StatsClient(host, port, prefix=None))
