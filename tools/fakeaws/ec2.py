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
4. **idempotency** (RunInstances): a ClientToken that already launched
   answers with that launch's reply and starts nothing (as EC2 does);
5. **quota** (RunInstances, flag ``enforce_quotas``): vCPUs are reserved in
   the ledger; none fit -> ``VcpuLimitExceeded``, some fit -> fewer
   instances (see ``ledger.py``);
6. **launch count**: with ``launch: "max"`` MinCount is raised to MaxCount,
   because moto starts MinCount and EC2 starts up to MaxCount;
7. **moto** answers; the proxy counts what it returned and books the
   instance ids in the ledger (TerminateInstances releases them).
   Calls reach moto one at a time (after their latency, so they still
   overlap like on EC2): moto's EC2 backend is not thread-safe.  Two
   RunInstances at once fail one of them with a 500 after it created part
   of its instances (addresses come from one generator without a lock) --
   a partial batch EC2 never produces; a DescribeInstances with tag
   filters during a CreateTags fails with "dictionary changed size during
   iteration".

DescribeImportSnapshotTasks and DescribeImportImageTasks pass steps 1-3
and are then answered by the proxy itself from the tasks a test seeded
(``imports.py``): moto has no import tasks.

A hold is an ``Event.wait`` on the proxy's stop event, so stopping the
proxy never waits for a 30 s injected delay.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs

from tools.fakeaws.config import Behaviour
from tools.fakeaws.faults import ERROR_CODES, FaultRule, ec2_error_body
from tools.fakeaws.forward import Reply
from tools.fakeaws.imports import IMPORT_ACTIONS, ImportTasks, \
    answer_import_call
from tools.fakeaws.ledger import Ledger, quota_code, vcpus
from tools.fakeaws.stats import Stats
from tools.fakeaws.throttle import bucket_costs

# See the module docstring, step 6.
_MOTO_LOCK = threading.Lock()

__all__ = ["EC2Call", "EC2Context", "handle_ec2_call"]

_XML = [("Content-Type", "text/xml;charset=UTF-8")]
_INSTANCE_ID = re.compile(rb"<instanceId>([^<]+)</instanceId>")
_TERMINATED = re.compile(rb"<instanceState>\s*<code>48</code>")
DEFAULT_INSTANCE_TYPE = "m1.small"  # what EC2 starts without InstanceType
# ClientTokens remembered (EC2 keeps them for days; a test run needs few).
TOKEN_MEMORY = 100000

Forward = Callable[[bytes], Reply]


@dataclass
class EC2Context:
    """The proxy state an EC2 call works with (each part locks itself)."""
    behaviour: Behaviour
    stats: Stats
    ledger: Ledger
    stopping: threading.Event
    # (region, ClientToken) → the reply of the RunInstances that used it:
    # EC2 answers a repeated token with the original launch (idempotency).
    tokens: dict = field(default_factory=dict)
    tokens_lock: threading.Lock = field(default_factory=threading.Lock)
    # Import tasks moto does not have (``imports.py``), seeded by tests.
    imports: ImportTasks = field(default_factory=ImportTasks)


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

    def ids(self, prefix: str = "InstanceId.") -> list[str]:
        return [v[0] for k, v in self.params.items() if k.startswith(prefix)]

    def with_param(self, name: str, value: int) -> None:
        """Rewrite one numeric parameter in place, the rest byte-for-byte."""
        pattern = re.compile(rb"(?:(?<=&)|^)" + name.encode() + rb"=\d+")
        self.body = pattern.sub(f"{name}={value}".encode(), self.body)


def handle_ec2_call(call: EC2Call, ctx: EC2Context,
                    forward: Forward) -> Reply:
    ctx.stats.begin(call.action)
    try:
        if call.action == "RunInstances":
            return _run_instances(call, ctx, forward)
        reply, outcome = _common(call, ctx)
        if reply is None and call.action in IMPORT_ACTIONS:
            return answer_import_call(ctx.imports, call.action, call.params,
                                      call.region)
        if reply is None:
            reply, outcome = _forward(call, ctx, forward)
        if call.action == "DescribeInstances" and outcome == "ok":
            ctx.stats.described(len(_INSTANCE_ID.findall(reply.body)),
                                len(_TERMINATED.findall(reply.body)))
        if call.action == "TerminateInstances" and outcome == "ok":
            ids = call.ids()
            ctx.stats.terminate_instances(len(ids))
            ctx.ledger.release(ids)
        return reply
    finally:
        ctx.stats.end(call.action)


def _common(call: EC2Call, ctx: EC2Context) -> tuple[Reply | None, str]:
    """Throttle, latency and faults: an early answer, or (None, "")."""
    b = ctx.behaviour
    if not b.throttle.admit(call.region,
                            bucket_costs(call.action, call.params)):
        ctx.stats.throttle(call.action)
        status, message = ERROR_CODES["RequestLimitExceeded"]
        return _xml(status, "RequestLimitExceeded", message), "throttled"
    ctx.stopping.wait(b.latency(call.action))
    rule = b.faults.pick(call.action, call.first("InstanceType"),
                         call.first("SubnetId")
                         or call.first("NetworkInterface.1.SubnetId"))
    if rule is not None:
        ctx.stopping.wait(rule.delay)
        if rule.code is not None:
            ctx.stats.fault(call.action, rule.code)
            status, body = rule.answer(call.params)
            return Reply(status, body, list(_XML)), rule.code
    return None, ""


def _forward(call: EC2Call, ctx: EC2Context,
             forward: Forward) -> tuple[Reply, str]:
    asked = time.monotonic()
    with _MOTO_LOCK:     # see the module docstring, step 7
        began = time.monotonic()
        reply = forward(call.body)
    ctx.stats.moto(call.action, began - asked, time.monotonic() - began)
    if reply.status >= 400:
        ctx.stats.error(call.action, reply.status)
        return reply, f"error:{reply.status}"
    return reply, "ok"


def _run_instances(call: EC2Call, ctx: EC2Context, forward: Forward
                   ) -> Reply:
    started = time.time()
    reply, outcome = _common(call, ctx)
    ids: list[str] = []
    token = call.first("ClientToken")
    if reply is None and token:
        with ctx.tokens_lock:
            earlier = ctx.tokens.get((call.region, token))
        if earlier is not None:
            # Same token again (a client retrying a call whose answer it
            # lost): the original launch, nothing new started.
            ctx.stats.run_instances(call.count("MinCount"),
                                    call.count("MaxCount"), 0,
                                    call.first("InstanceType"), "idempotent",
                                    started)
            return earlier
    if reply is None:
        reply, outcome, ids = _launch(call, ctx, forward)
        if token and outcome == "ok":
            with ctx.tokens_lock:
                if len(ctx.tokens) > TOKEN_MEMORY:
                    ctx.tokens.clear()
                ctx.tokens[(call.region, token)] = reply
    ctx.stats.run_instances(call.count("MinCount"), call.count("MaxCount"),
                            len(ids), call.first("InstanceType"), outcome,
                            started)
    return reply


def _launch(call: EC2Call, ctx: EC2Context, forward: Forward
            ) -> tuple[Reply, str, list[str]]:
    """Quota check, count rewrite, moto, ledger: reply, outcome, ids."""
    min_count, max_count = call.count("MinCount"), call.count("MaxCount")
    instance_type = call.first("InstanceType") or DEFAULT_INSTANCE_TYPE
    spot = call.first("InstanceMarketOptions.MarketType") == "spot"
    code = quota_code(instance_type, spot)
    per = vcpus(instance_type)
    enforce = ctx.behaviour.enforce_quotas and code is not None
    granted = max_count
    if enforce:
        limit = ctx.behaviour.quotas.value("ec2", code)
        granted = ctx.ledger.reserve(call.region, code, per, max_count,
                                     limit)
        if granted < min_count:
            ctx.ledger.settle(call.region, code, per, granted, [])
            ctx.stats.fault(call.action, "VcpuLimitExceeded")
            status, body = FaultRule("VcpuLimitExceeded",
                                     limit=int(limit)).answer(call.params)
            return (Reply(status, body, list(_XML)), "VcpuLimitExceeded",
                    [])
    subnet = (call.first("SubnetId")
              or call.first("NetworkInterface.1.SubnetId"))
    _set_counts(call, ctx.behaviour.launch_for(subnet), min_count, granted)
    reply, outcome = _forward(call, ctx, forward)
    ids = []
    if outcome == "ok":
        ids = [m.decode() for m in _INSTANCE_ID.findall(reply.body)]
    if code is not None:
        ctx.ledger.settle(call.region, code, per, granted if enforce else 0,
                          ids)
    return reply, outcome, ids


def _set_counts(call: EC2Call, launch: str, min_count: int,
                granted: int) -> None:
    if granted != call.count("MaxCount"):
        call.with_param("MaxCount", granted)
    if launch == "max" and granted != min_count:
        call.with_param("MinCount", granted)


def _xml(status: int, code: str, message: str) -> Reply:
    return Reply(status, ec2_error_body(code, message), list(_XML))
