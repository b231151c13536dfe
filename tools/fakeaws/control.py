"""The proxy's own endpoints under ``/_fake/`` (JSON in, JSON out).

=========  ==========================  =====================================
method     path                        effect
=========  ==========================  =====================================
GET        ``/_fake/health``           ``{"ok": true, "moto": URL}``
GET        ``/_fake/stats``            counters (``stats.py``), ``buckets``,
                                       ``vcpus_in_use`` (``ledger.py``) and
                                       ``moto_cpu_s`` (moto's CPU seconds
                                       since the counters were cleared)
POST       ``/_fake/stats/reset``      clear the counters
GET        ``/_fake/config``           current behaviour (``config.py``)
POST       ``/_fake/config``           apply JSON flags, answer new config
POST       ``/_fake/config/reset``     back to the start-up flags
POST       ``/_fake/faults``           append one fault rule (JSON object)
DELETE     ``/_fake/faults``           drop every fault rule
POST       ``/_fake/refill``           fill every token bucket
POST       ``/_fake/reset``            moto reset, counters and vCPU
                                       ledger cleared, import tasks
                                       dropped, buckets full (config kept)
GET        ``/_fake/import-tasks``     the seeded import tasks
POST       ``/_fake/import-tasks``     add one finished import task
                                       (``imports.py``), answer it
DELETE     ``/_fake/import-tasks``     drop every import task
=========  ==========================  =====================================

A bad request body or flag is answered 400 with ``{"error": ...}`` and
changes nothing that was not already valid (see ``Behaviour.apply``).  No
path under ``/_fake/`` can clash with AWS: S3 bucket names cannot contain
an underscore, and EC2/Service Quotas only use ``/``.
"""

from __future__ import annotations

import json
from typing import Callable

from tools.fakeaws.config import Behaviour
from tools.fakeaws.faults import FaultRule
from tools.fakeaws.forward import Reply
from tools.fakeaws.imports import ImportTasks
from tools.fakeaws.ledger import Ledger
from tools.fakeaws.stats import Stats

__all__ = ["ControlPlane"]


def _json(status: int, doc: object) -> Reply:
    return Reply(status, json.dumps(doc, sort_keys=True).encode() + b"\n",
                 [("Content-Type", "application/json")])


class ControlPlane:
    def __init__(self, behaviour: Behaviour, stats: Stats, ledger: Ledger,
                 moto_url: str, reset_moto: Callable[[], None],
                 imports: ImportTasks | None = None,
                 moto_cpu: Callable[[], float | None] = lambda: None):
        self.behaviour = behaviour
        self.moto_cpu = moto_cpu
        self._cpu_base = moto_cpu()
        self.imports = imports if imports is not None else ImportTasks()
        self.stats = stats
        self.ledger = ledger
        self.moto_url = moto_url
        self.reset_moto = reset_moto

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        route = (method, path.split("?", 1)[0].rstrip("/"))
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"error": "body is not JSON"})
        try:
            return self._route(route, payload)
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": str(exc)})

    def _route(self, route: tuple[str, str], payload: dict) -> Reply:
        b = self.behaviour
        if route == ("GET", "/_fake/health"):
            return _json(200, {"ok": True, "moto": self.moto_url})
        if route == ("GET", "/_fake/stats"):
            doc = self.stats.snapshot()
            doc["buckets"] = b.throttle.levels()
            doc["vcpus_in_use"] = self.ledger.usage()
            doc["moto_cpu_s"] = self._cpu_since_reset()
            return _json(200, doc)
        if route == ("POST", "/_fake/stats/reset"):
            self.stats.reset()
            self._cpu_base = self.moto_cpu()
            return _json(200, {"ok": True})
        if route == ("GET", "/_fake/config"):
            return _json(200, b.to_dict())
        if route == ("POST", "/_fake/config"):
            if not isinstance(payload, dict):
                raise ValueError("config must be a JSON object")
            b.apply(payload)
            return _json(200, b.to_dict())
        if route == ("POST", "/_fake/config/reset"):
            b.restore()
            return _json(200, b.to_dict())
        if route == ("POST", "/_fake/faults"):
            b.faults.add(FaultRule.from_dict(payload))
            return _json(200, {"faults": b.faults.rules()})
        if route == ("DELETE", "/_fake/faults"):
            b.faults.clear()
            return _json(200, {"faults": []})
        if route == ("POST", "/_fake/refill"):
            b.throttle.refill_all()
            return _json(200, {"ok": True})
        if route == ("GET", "/_fake/import-tasks"):
            return _json(200, {"tasks": self.imports.all()})
        if route == ("POST", "/_fake/import-tasks"):
            if not isinstance(payload, dict):
                raise ValueError("an import task must be a JSON object")
            return _json(200, self.imports.add(payload))
        if route == ("DELETE", "/_fake/import-tasks"):
            self.imports.clear()
            return _json(200, {"tasks": []})
        if route == ("POST", "/_fake/reset"):
            self.reset_moto()
            self.ledger.clear()
            self.stats.reset()
            self._cpu_base = self.moto_cpu()
            b.throttle.refill_all()
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no control endpoint {route}"})

    def _cpu_since_reset(self) -> float | None:
        now, base = self.moto_cpu(), self._cpu_base
        if now is None or base is None:
            return None
        return round(now - base, 2)
