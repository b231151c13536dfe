"""What happens to one EC2 call on its way through the proxy.

EC2 speaks the AWS query protocol: ``POST /`` with a form body
``Action=RunInstances&Version=2016-11-15&MaxCount=3&...``.  For each call,
in this order (the order EC2's own front end implies):

1. **throttle**: the action's token buckets (see ``throttle.py``); when one
   is empty the answer is an immediate 503 ``RequestLimitExceeded``;
2. **latency**: the call is held for the configured seconds, in its own
   handler thread, so parallel calls each take the latency and overlap
   like on EC2 (moto itself answers RunInstances in ~30 ms);
3. **faults**: a matching rule may delay the call further and/or answer an
   EC2 error instead of moto (see ``faults.py``);
4. **launch count**: with ``launch: "max"`` RunInstances' MinCount is raised
   to MaxCount, because moto starts MinCount and EC2 starts up to MaxCount;
5. **moto** answers; the proxy counts what it returned.

A hold is an ``Event.wait`` on the proxy's stop event, so stopping the
proxy never waits for a 30 s injected delay.
"""

from __future__ import annotations

import re
import threading
from typing import Callable
from urllib.parse import parse_qs

from tools.fakeaws.config import Behaviour
from tools.fakeaws.faults import ERROR_CODES, ec2_error_body
from tools.fakeaws.forward import Reply
from tools.fakeaws.stats import Stats
from tools.fakeaws.throttle import bucket_costs

__all__ = ["EC2Call", "handle_ec2_call"]

_XML = [("Content-Type", "text/xml;charset=UTF-8")]
_MIN_COUNT = re.compile(rb"(?:(?<=&)|^)MinCount=\d+")
_INSTANCE_ID_TAG = re.compile(rb"<instanceId>")

Forward = Callable[[bytes], Reply]


class EC2Call:
    """The parsed form of one query-protocol request."""

    def __init__(self, body: bytes, region: str):
        self.body = body
        self.region = region
        self.params = parse_qs(body.decode("utf-8", "replace"),
                               keep_blank_values=True)
        self.action = self.first("Action") or "Unknown"

    def first(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[0] if values else default

    def count(self, name: str) -> int:
        try:
            return int(self.first(name, "1"))
        except ValueError:
            return 1


def handle_ec2_call(call: EC2Call, behaviour: Behaviour, stats: Stats,
                    stopping: threading.Event, forward: Forward) -> Reply:
    stats.begin(call.action)
    try:
        reply, outcome = _run(call, behaviour, stats, stopping, forward)
        if call.action == "RunInstances":
            _record_run(call, reply, outcome, stats)
        elif call.action == "TerminateInstances" and outcome == "ok":
            stats.terminate_instances(
                sum(1 for k in call.params if k.startswith("InstanceId.")))
        return reply
    finally:
        stats.end(call.action)


def _run(call: EC2Call, behaviour: Behaviour, stats: Stats,
         stopping: threading.Event, forward: Forward) -> tuple[Reply, str]:
    """The reply and a short outcome word for the statistics."""
    if not behaviour.throttle.admit(call.region,
                                    bucket_costs(call.action, call.params)):
        stats.throttle(call.action)
        status, message = ERROR_CODES["RequestLimitExceeded"]
        return (Reply(status, ec2_error_body("RequestLimitExceeded", message),
                      list(_XML)), "throttled")
    stopping.wait(behaviour.latency(call.action))
    rule = behaviour.faults.pick(call.action, call.first("InstanceType"))
    if rule is not None:
        stopping.wait(rule.delay)
        if rule.code is not None:
            stats.fault(call.action, rule.code)
            status, body = rule.answer(call.params)
            return Reply(status, body, list(_XML)), rule.code
    body = call.body
    if call.action == "RunInstances" and behaviour.launch == "max":
        body = _MIN_COUNT.sub(
            b"MinCount=" + str(call.count("MaxCount")).encode(), body)
    reply = forward(body)
    if reply.status >= 400:
        stats.error(call.action, reply.status)
        return reply, f"error:{reply.status}"
    return reply, "ok"


def _record_run(call: EC2Call, reply: Reply, outcome: str,
                stats: Stats) -> None:
    launched = (len(_INSTANCE_ID_TAG.findall(reply.body))
                if outcome == "ok" else 0)
    stats.run_instances(call.count("MinCount"), call.count("MaxCount"),
                        launched, call.first("InstanceType"), outcome)
