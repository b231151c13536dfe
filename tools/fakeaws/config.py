"""Run-time behaviour of the fake: latency, throttling, faults, quotas.

One :class:`Behaviour` lives in the proxy.  ``POST /_fake/config`` sends it a
JSON object of flags, all optional.  Unknown flags, a bad ``launch`` or
``latency_jitter`` and malformed fault rules are refused (ValueError, HTTP
400) before anything changes; bucket and quota entries are checked one by
one, so a bad one there leaves the entries before it applied::

    {"run_instances_latency": 1.5,         # shortcut for latency.RunInstances
     "latency": {"DescribeInstances": 0.2, "*": 0.0},  # seconds per action
     "latency_jitter": 0.2,                # +-20 % uniformly, 0 = exact
     "throttle": true,                     # master switch of all buckets
     "buckets": {"run_instances": {"burst": 5, "rate": 2, "enabled": true}},
     "faults": [{"code": "InsufficientInstanceCapacity", "count": 2}],
     "quotas": {"ec2": {"L-1216C47A": 64}},
     "launch": "max",                      # see below
     "launch_by_subnet": {"subnet-1": "min"},  # per subnet, see below
     "enforce_quotas": false,              # vCPU quotas, see ledger.py
     "refuse_credentials": false}          # see below

``launch``: moto starts MinCount instances, EC2 starts as many as it can up
to MaxCount.  With ``"max"`` (the default) the proxy rewrites ``MinCount``
in a RunInstances body to the MaxCount value, so a launcher that asks for
"1 to N" gets N like on EC2; ``"min"`` forwards the body untouched.
``launch_by_subnet`` overrides it for calls launching into a subnet (a
zone short of capacity next to one with plenty); it replaces the whole map.

``refuse_credentials``: every EC2 and Service Quotas call is answered as
AWS answers a wrong or deactivated access key -- EC2 ``AuthFailure``
(HTTP 401), Service Quotas ``UnrecognizedClientException`` (HTTP 400) --
and its time is recorded in the stats (``refused``).

``latency`` entries merge into the current map (a value of ``null`` removes
one); ``"*"`` applies to every EC2 action without its own entry.  ``faults``
replaces the whole list (use ``POST /_fake/faults`` to append one).
``POST /_fake/config/reset`` goes back to the start-up flags.
"""

from __future__ import annotations

import random
import threading

from tools.fakeaws.faults import FaultPlan, FaultRule
from tools.fakeaws.quotas import QuotaTable
from tools.fakeaws.throttle import Throttle

__all__ = ["Behaviour"]

_FLAGS = {"run_instances_latency", "latency", "latency_jitter", "throttle",
          "buckets", "faults", "quotas", "launch", "launch_by_subnet",
          "enforce_quotas", "refuse_credentials"}


class Behaviour:
    """Everything a test can change while the fake runs."""

    def __init__(self, flags: dict | None = None):
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._initial = dict(flags or {})
        self.restore()

    def restore(self) -> None:
        """Back to the defaults plus the flags given at construction.

        The parts are replaced, not cleared: a call in flight keeps the
        objects it already holds and never sees a half-reset state."""
        self.throttle = Throttle()
        self.faults = FaultPlan()
        self.quotas = QuotaTable()
        with self._lock:
            self._latency: dict[str, float] = {"RunInstances": 1.5}
            self._jitter = 0.0
            self._launch = "max"
            self._launch_by_subnet: dict[str, str] = {}
            self._enforce_quotas = False
            self._refuse_credentials = False
        self.apply(self._initial)

    def apply(self, flags: dict) -> None:
        unknown = set(flags) - _FLAGS
        if unknown:
            raise ValueError(f"unknown flags {sorted(unknown)}")
        latency = dict(flags.get("latency") or {})
        if "run_instances_latency" in flags:
            latency["RunInstances"] = flags["run_instances_latency"]
        jitter = float(flags.get("latency_jitter", self._jitter))
        launch = flags.get("launch", self._launch)
        if launch not in ("max", "min"):
            raise ValueError("launch must be 'max' or 'min'")
        by_subnet = flags.get("launch_by_subnet", self._launch_by_subnet)
        if not isinstance(by_subnet, dict) or not all(
                v in ("max", "min") for v in by_subnet.values()):
            raise ValueError("launch_by_subnet must map subnets to 'max' "
                             "or 'min'")
        if not 0 <= jitter < 1:
            raise ValueError("latency_jitter must be in [0, 1)")
        faults = None
        if "faults" in flags:
            faults = [FaultRule.from_dict(f) for f in flags["faults"]]
        with self._lock:
            for action, seconds in latency.items():
                if seconds is None:
                    self._latency.pop(action, None)
                else:
                    self._latency[action] = max(0.0, float(seconds))
            self._jitter = jitter
            self._launch = launch
            self._launch_by_subnet = dict(by_subnet)
            self._enforce_quotas = bool(flags.get("enforce_quotas",
                                                  self._enforce_quotas))
            self._refuse_credentials = bool(flags.get(
                "refuse_credentials", self._refuse_credentials))
        if faults is not None:
            self.faults.replace(faults)
        if "throttle" in flags or "buckets" in flags:
            self.throttle.configure(flags.get("throttle"),
                                    flags.get("buckets"))
        if "quotas" in flags:
            self.quotas.update(flags["quotas"])

    def latency(self, action: str) -> float:
        """Seconds to hold this EC2 call before answering it."""
        with self._lock:
            base = self._latency.get(action, self._latency.get("*", 0.0))
            if base <= 0:
                return 0.0
            if self._jitter:
                base *= 1 + self._rng.uniform(-self._jitter, self._jitter)
            return base

    @property
    def launch(self) -> str:
        with self._lock:
            return self._launch

    def launch_for(self, subnet: str | None) -> str:
        """The launch count rule of a call into ``subnet``."""
        with self._lock:
            return self._launch_by_subnet.get(subnet or "", self._launch)

    @property
    def refuse_credentials(self) -> bool:
        with self._lock:
            return self._refuse_credentials

    @property
    def enforce_quotas(self) -> bool:
        with self._lock:
            return self._enforce_quotas

    def to_dict(self) -> dict:
        with self._lock:
            out: dict = {"latency": dict(self._latency),
                         "latency_jitter": self._jitter,
                         "launch": self._launch,
                         "launch_by_subnet": dict(self._launch_by_subnet),
                         "enforce_quotas": self._enforce_quotas,
                         "refuse_credentials": self._refuse_credentials}
        out["throttle"] = self.throttle.enabled
        out["buckets"] = {n: s.to_dict()
                          for n, s in self.throttle.specs().items()}
        out["faults"] = self.faults.rules()
        out["quotas"] = self.quotas.to_dict()
        return out
