"""Counters the proxy keeps about the traffic it saw.

Served as JSON by ``GET /_fake/stats`` and cleared by
``POST /_fake/stats/reset``.  Shape::

    {"calls":        {"RunInstances": 7, "servicequotas:GetServiceQuota": 1},
     "throttled":    {"RunInstances": 1},
     "faults":       {"RunInstances": {"InsufficientInstanceCapacity": 2}},
     "errors":       {"TerminateInstances": {"400": 1}},   # moto's own errors
     "in_flight":    {"RunInstances": 0},
     "max_in_flight": {"RunInstances": 4},                # peak concurrency
     "run_instances": {"calls": 7, "min_count": 9, "max_count": 12,
                       "launched": 12, "instances": [...],  # per call:
                       # counts, outcome, started (arrival), time (answer)
                       },
     "terminate_instances": {"calls": 2, "instance_ids": 40},
     "describe_instances": {"calls": 5, "instances": 90, "terminated": 30},
     "moto": {"DescribeInstances": {"calls": 9, "seconds": 1.2,
                                    "max_s": 0.4, "max_wait_s": 0.1}},
     "slow_moto": [{"action": "DescribeInstances", "time": 1700000001.0,
                    "seconds": 0.6, "wait_s": 0.0}],
     "since": 1700000000.0}

Keys of EC2 actions are bare action names; other services are prefixed
with the service name taken from the request's signature.  ``moto`` is
the time EC2 calls spent in moto (``seconds``, ``max_s``) and waiting for
it (``max_wait_s``; calls reach moto one at a time, see ``ec2.py``);
``slow_moto`` lists calls that held moto for :data:`SLOW_MOTO_SECONDS` or
more, with the ``time.time()`` they ended -- what stalled every other call
meanwhile.  ``calls`` counts
every request, also the throttled and faulted ones.  The per-call list of
RunInstances keeps the last :data:`MAX_CALL_RECORDS` entries so a long
benchmark cannot grow the proxy without bound.

Thread safety: every handler thread updates through one lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

__all__ = ["MAX_CALL_RECORDS", "SLOW_MOTO_SECONDS", "Stats"]

MAX_CALL_RECORDS = 10000
SLOW_MOTO_SECONDS = 0.5


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.since = time.time()
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.faults: dict[str, Counter[str]] = {}
        self.errors: dict[str, Counter[str]] = {}
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.run_records: deque[dict] = deque(maxlen=MAX_CALL_RECORDS)
        self.run_totals: Counter[str] = Counter()
        self.terminate_totals: Counter[str] = Counter()
        self.describe_totals: Counter[str] = Counter()
        self.moto_time: dict[str, dict[str, float]] = {}
        self.slow_moto: deque[dict] = deque(maxlen=MAX_CALL_RECORDS)
        # time.time() of every call refused for its credentials
        self.refused: deque[float] = deque(maxlen=MAX_CALL_RECORDS)

    def reset(self) -> None:
        with self._lock:
            in_flight = self.in_flight
            self._clear()
            # Calls still running finish after the reset; keep their count
            # so the gauge never goes negative.
            self.in_flight = +in_flight

    def begin(self, action: str) -> None:
        with self._lock:
            self.calls[action] += 1
            self.in_flight[action] += 1
            if self.in_flight[action] > self.max_in_flight[action]:
                self.max_in_flight[action] = self.in_flight[action]

    def end(self, action: str) -> None:
        with self._lock:
            self.in_flight[action] -= 1

    def moto(self, action: str, waited: float, took: float) -> None:
        """One call answered by moto after ``waited`` s for its turn and
        ``took`` s in moto."""
        with self._lock:
            entry = self.moto_time.setdefault(action, {
                "calls": 0, "seconds": 0.0, "max_s": 0.0, "max_wait_s": 0.0})
            entry["calls"] += 1
            entry["seconds"] += took
            entry["max_s"] = max(entry["max_s"], took)
            entry["max_wait_s"] = max(entry["max_wait_s"], waited)
            if took >= SLOW_MOTO_SECONDS:
                self.slow_moto.append({"action": action, "time": time.time(),
                                       "seconds": took, "wait_s": waited})

    def throttle(self, action: str) -> None:
        with self._lock:
            self.throttled[action] += 1

    def fault(self, action: str, code: str) -> None:
        with self._lock:
            self.faults.setdefault(action, Counter())[code] += 1

    def error(self, action: str, status: int) -> None:
        with self._lock:
            self.errors.setdefault(action, Counter())[str(status)] += 1

    def run_instances(self, min_count: int, max_count: int, launched: int,
                      instance_type: str | None, outcome: str,
                      started: float | None = None) -> None:
        """Record one RunInstances call; ``outcome`` is "ok", "throttled",
        "idempotent" (a ClientToken seen before: the earlier launch is
        returned), an injected error code or ``"error:<status>"``.  The
        record's ``time`` is when the answer was ready, ``started`` when
        the call arrived (``time.time()``)."""
        with self._lock:
            now = time.time()
            self.run_records.append({
                "min_count": min_count, "max_count": max_count,
                "launched": launched, "instance_type": instance_type,
                "outcome": outcome, "time": now,
                "started": now if started is None else started})
            self.run_totals["calls"] += 1
            self.run_totals["min_count"] += min_count
            self.run_totals["max_count"] += max_count
            self.run_totals["launched"] += launched

    def refuse(self) -> None:
        """One call refused with AuthFailure (``refuse_credentials``)."""
        with self._lock:
            self.refused.append(time.time())

    def terminate_instances(self, ids: int) -> None:
        with self._lock:
            self.terminate_totals["calls"] += 1
            self.terminate_totals["instance_ids"] += ids

    def described(self, instances: int, terminated: int) -> None:
        """One DescribeInstances answered with ``instances`` records, of
        which ``terminated`` were terminated instances."""
        with self._lock:
            self.describe_totals["calls"] += 1
            self.describe_totals["instances"] += instances
            self.describe_totals["terminated"] += terminated

    def snapshot(self) -> dict:
        with self._lock:
            run = {k: self.run_totals.get(k, 0)
                   for k in ("calls", "min_count", "max_count", "launched")}
            run["instances"] = list(self.run_records)
            return {
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
                "faults": {a: dict(c) for a, c in self.faults.items()},
                "errors": {a: dict(c) for a, c in self.errors.items()},
                "in_flight": {a: n for a, n in self.in_flight.items() if n},
                "max_in_flight": dict(self.max_in_flight),
                "run_instances": run,
                "refused": list(self.refused),
                "terminate_instances": {
                    k: self.terminate_totals.get(k, 0)
                    for k in ("calls", "instance_ids")},
                "describe_instances": {
                    k: self.describe_totals.get(k, 0)
                    for k in ("calls", "instances", "terminated")},
                "moto": {a: dict(e) for a, e in self.moto_time.items()},
                "slow_moto": list(self.slow_moto),
                "since": self.since,
            }
