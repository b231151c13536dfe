"""Injectable behaviour of the fake ARM: latency, throttling, failures, quota.

Every knob is a field of :class:`Behaviour`; ``LocalAzure(**knobs)``,
``LocalAzure.configure(**knobs)`` and ``POST /_fake/config`` all set them.
The ``*_next`` counters are consumed one per matching event, so a test can
script "the next 3 calls are throttled" without timing assumptions.

:class:`FaultGate` decides, per ARM request, whether to answer 429 or 5xx
instead of serving it.  Match patterns are ``fnmatch`` globs over
``"METHOD template"`` (the same keys as ``stats()["calls"]``), e.g.
``"PUT */virtualMachines/*"``.  Throttled and failed requests are not served:
the state does not change, as with real ARM throttling.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Optional

from .routes import Reply

# Azure's default regional quotas are far larger for pay-as-you-go
# subscriptions; these defaults keep quota errors out of tests that do not
# ask for them.
DEFAULT_QUOTA = 1000


@dataclass
class Behaviour:
    """All runtime knobs (seconds for times, counts for ``*_next``)."""
    # Time until a long-running operation reports its final status.
    vm_create_latency: float = 0.0
    vm_delete_latency: float = 0.0
    network_latency: float = 0.0
    group_delete_latency: float = 0.0
    # Added to every ARM reply (sleeping outside the state lock), to mimic
    # the ~100 ms round trip of the real API in benchmarks.
    api_latency: float = 0.0
    # Retry-After on in-progress operation polls; None sends none, so
    # clients poll at their own polling_interval.
    lro_retry_after: Optional[float] = None
    # Throttling: the next N matching calls, and/or any call above a rate.
    throttle_next: int = 0
    throttle_match: str = "*"
    throttle_rate: float = 0.0      # requests per second; 0 disables
    throttle_rate_match: str = "*"
    retry_after: float = 1.0        # seconds, sent as Retry-After on 429
    # Server errors for the next N matching calls.
    server_error_next: int = 0
    server_error_match: str = "*"
    server_error_status: int = 500
    # VM creates whose operation ends Failed.
    fail_vm_create_next: int = 0
    fail_vm_create_code: str = "AllocationFailed"
    fail_vm_create_message: str = (
        "Allocation failed. We do not have sufficient capacity for the "
        "requested VM size in this region.")
    # VM creates rejected with a quota error regardless of usage.
    quota_error_next: int = 0
    # Quota limits by usage name: "cores", "virtualMachines" or a VM family
    # such as "standardDSv3Family"; unnamed ones default to DEFAULT_QUOTA.
    quota_limits: dict[str, int] = field(default_factory=dict)
    # Public address pools, and an optional fixed address that every public
    # IP gets instead (e.g. "127.0.0.1" so keyscans reach a local sshd).
    public_ipv4_network: str = "198.18.0.0/15"
    public_ipv6_network: str = "2001:db8:fa4e::/64"
    fixed_public_ipv4: Optional[str] = None
    fixed_public_ipv6: Optional[str] = None
    # Items per page of list results (the rest follows via nextLink).
    page_size: int = 100

    def update(self, **flags: Any) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(flags) - names)
        if unknown:
            raise TypeError(f"unknown fake Azure setting(s): {unknown}")
        for name, value in flags.items():
            setattr(self, name, value)

    def quota(self, name: str) -> int:
        return int(self.quota_limits.get(name, DEFAULT_QUOTA))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def format_seconds(value: float) -> str:
    """Retry-After is whole seconds in Azure; fractions only if asked for."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class FaultGate:
    """Chooses which requests are throttled or failed.  Runs under the lock."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self._recent: deque[float] = deque()

    def check(self, key: str, now: float) -> Optional[Reply]:
        b = self.behaviour
        if b.throttle_next > 0 and fnmatch.fnmatch(key, b.throttle_match):
            b.throttle_next -= 1
            return self._throttled("The request is being throttled.")
        if b.throttle_rate > 0 and fnmatch.fnmatch(key, b.throttle_rate_match):
            # Sliding one-second window; rejected calls do not count, as a
            # client backing off must eventually get through.
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= max(1, math.floor(b.throttle_rate)):
                return self._throttled(
                    "The request is being throttled as the limit has been "
                    "reached for operation type - Read_ObservationWindow.")
            self._recent.append(now)
        if b.server_error_next > 0 and fnmatch.fnmatch(key,
                                                        b.server_error_match):
            b.server_error_next -= 1
            return Reply(b.server_error_status, {"error": {
                "code": "InternalServerError",
                "message": "Encountered internal server error. Diagnostic "
                           "information: injected by the local fake."}})
        return None

    def _throttled(self, message: str) -> Reply:
        return Reply(429, {"error": {"code": "TooManyRequests",
                                     "message": message}},
                     {"Retry-After": format_seconds(
                         self.behaviour.retry_after)})

    def take_vm_failure(self) -> Optional[dict]:
        b = self.behaviour
        if b.fail_vm_create_next <= 0:
            return None
        b.fail_vm_create_next -= 1
        return {"code": b.fail_vm_create_code,
                "message": b.fail_vm_create_message}

    def take_quota_error(self) -> bool:
        if self.behaviour.quota_error_next <= 0:
            return False
        self.behaviour.quota_error_next -= 1
        return True


class Stats:
    """Call counters; ``calls`` is keyed by ``"METHOD template"``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.throttled = 0
        self.server_errors = 0
        self.tokens_issued = 0
        # (time.monotonic(), issued) of every token request
        self.token_requests: list[tuple[float, bool]] = []
        self.vm_creates_in_flight_max = 0

    def as_dict(self) -> dict:
        return {"calls": dict(self.calls),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "tokens_issued": self.tokens_issued,
                "token_requests": len(self.token_requests),
                "vm_creates_in_flight_max": self.vm_creates_in_flight_max,
                "total": sum(self.calls.values())}
