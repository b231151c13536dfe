"""Scripted EC2 failures and the EC2 XML error body.

A test or benchmark adds :class:`FaultRule` values at run time: "the next 2
RunInstances fail with InsufficientInstanceCapacity", "every t3.large launch
fails with probability 0.3", "DescribeInstances hangs 5 s".  The proxy asks
:meth:`FaultPlan.pick` for every EC2 call; the first matching rule with
budget left fires, and a rule whose ``count`` is used up is dropped.  A rule
with ``code=None`` only delays the call, which is then forwarded as usual.

Error answers use the body and status codes EC2 itself sends, so botocore
raises ``ClientError`` with ``Error.Code`` set and its retry logic sees the
same thing it would see from AWS (standard mode retries HTTP 500/503 and
RequestLimitExceeded; a caller that wants to see the first failure sets
``total_max_attempts=1``).

Thread safety: one lock guards the rule list; :meth:`pick` both matches and
decrements, so two parallel calls never both consume the last count.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from xml.sax.saxutils import escape

__all__ = ["ERROR_CODES", "FaultRule", "FaultPlan", "ec2_error_body"]

# EC2 error code -> (HTTP status, message template).  Capacity errors are
# server errors (5xx) in EC2's own classification; limit errors are 400s.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "RequestLimitExceeded": (503, "Request limit exceeded."),
    "InsufficientInstanceCapacity": (
        500, "We currently do not have sufficient {instance_type} capacity "
             "in the Availability Zone you requested ({zone}). Our system "
             "will be working on provisioning additional capacity."),
    "InstanceLimitExceeded": (
        400, "Your quota allows for 0 more running instance(s). You "
             "requested at least {count}."),
    "VcpuLimitExceeded": (
        400, "You have requested more vCPU capacity than your current vCPU "
             "limit of {limit} allows for the instance bucket that the "
             "specified instance type belongs to. Please visit "
             "http://aws.amazon.com/contact-us/ec2-request to request an "
             "adjustment to this limit."),
    "InternalError": (500, "An internal error has occurred"),
    "AuthFailure": (401, "AWS was not able to validate the provided access "
                         "credentials"),
    "Unavailable": (503, "The server is overloaded and can't handle the "
                         "request."),
}


def ec2_error_body(code: str, message: str) -> bytes:
    """The XML body EC2 sends with an error (query protocol)."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
            ).encode()


@dataclass
class FaultRule:
    """One scripted failure.

    ``code``: EC2 error code to answer (None = delay only, then forward).
    ``action``: EC2 action it applies to ("*" = any EC2 action).
    ``count``: how many calls it fires for (None = no limit).
    ``probability``: chance a matching call fires it (0..1).
    ``delay``: seconds to wait before answering (or forwarding).
    ``instance_type``: only RunInstances calls for this type match.
    ``subnet``: only calls launching into this subnet match (a zone short
    of capacity: ``SubnetId`` or the first network interface's).
    ``status``/``message``: override the table in :data:`ERROR_CODES`.
    ``limit``: the number quoted by VcpuLimitExceeded's message.
    """
    code: str | None = "InsufficientInstanceCapacity"
    action: str = "RunInstances"
    count: int | None = 1
    probability: float = 1.0
    delay: float = 0.0
    instance_type: str | None = None
    subnet: str | None = None
    status: int | None = None
    message: str | None = None
    limit: int = 0
    fired: int = field(default=0)

    @classmethod
    def from_dict(cls, data: dict) -> "FaultRule":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def matches(self, action: str, instance_type: str | None,
                subnet: str | None = None) -> bool:
        if self.action not in ("*", action):
            return False
        if self.instance_type and self.instance_type != instance_type:
            return False
        if self.subnet and self.subnet != subnet:
            return False
        return self.count is None or self.fired < self.count

    def answer(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        """HTTP status and XML body for this fault."""
        assert self.code is not None
        status, template = ERROR_CODES.get(self.code,
                                           (400, "Injected fault."))
        text = self.message or template.format(
            instance_type=_first(params, "InstanceType", "the requested"),
            zone=_first(params, "Placement.AvailabilityZone", "us-east-1a"),
            count=_first(params, "MinCount", "1"),
            limit=self.limit)
        return self.status or status, ec2_error_body(self.code, text)


def _first(params: dict[str, list[str]], name: str, default: str) -> str:
    values = params.get(name)
    return values[0] if values else default


class FaultPlan:
    """The ordered list of active rules."""

    def __init__(self, rng: random.Random | None = None):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def clear(self) -> None:
        self.replace([])

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def pick(self, action: str, instance_type: str | None,
             subnet: str | None = None) -> FaultRule | None:
        """The rule that fires for this call, already counted, or None."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(action, instance_type, subnet):
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.count is not None and rule.fired >= rule.count:
                    self._rules.remove(rule)
                return rule
        return None
