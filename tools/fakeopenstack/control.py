"""``/_fake/*``: steer and observe the local OpenStack over HTTP.

For a fake running in another process (``python -m tools.fakeopenstack``),
e.g. under the demo or a benchmark:

* ``GET /_fake/stats`` -> ``{"calls": {"POST /compute/v2.1/servers": 3},
  "max_in_flight": {...}, "unhandled": {...}}``;
  ``POST /_fake/stats/reset`` zeroes it.
* ``GET /_fake/config`` / ``POST /_fake/config`` with a JSON object of
  :class:`~tools.fakeopenstack.records.Settings` flags (400 on an unknown
  flag).
* ``POST /_fake/fail`` with ``{"count": 2, "kind": "http"|"quota"|"error",
  "status": 503, "message": "...", "code": 500}`` scripts the next creates.
* ``GET /_fake/servers`` -> the servers in Nova's wire format.

No token is needed: this is the operator's back door, bound to loopback.
"""

from __future__ import annotations

from tools.fakeopenstack.nova import MAX_MICROVERSION
from tools.fakeopenstack.records import CreateFailure
from tools.fakeopenstack.routing import (ApiError, CallStats, Request,
                                         Response, Router)
from tools.fakeopenstack.servers import server_body
from tools.fakeopenstack.state import CloudState

__all__ = ["register", "server_snapshot", "script_failures"]


def server_snapshot(state: CloudState) -> list[dict]:
    with state.lock:
        state.tick()
        return [server_body(state, s, MAX_MICROVERSION)
                for s in state.servers.values()]


def script_failures(state: CloudState, count: int, kind: str,
                    status: int = 500, message: str | None = None,
                    code: int | None = None) -> None:
    failure = CreateFailure(kind=kind, status=status, message=message,
                            code=code)
    with state.lock:
        state.failures.extend([failure] * count)


def _bad(message: str) -> ApiError:
    return ApiError(400, {"error": {"code": 400, "message": message}})


def register(router: Router, state: CloudState, stats: CallStats) -> None:
    def get_stats(req: Request) -> Response:
        return Response(200, stats.snapshot())

    def reset_stats(req: Request) -> Response:
        stats.reset()
        return Response(204)

    def get_config(req: Request) -> Response:
        with state.lock:
            return Response(200, state.settings.as_dict())

    def set_config(req: Request) -> Response:
        flags = req.json()
        if not isinstance(flags, dict):
            raise _bad("expected a JSON object of flags")
        with state.lock:
            try:
                state.settings.update(**flags)
            except ValueError as e:
                raise _bad(str(e))
            return Response(200, state.settings.as_dict())

    def fail(req: Request) -> Response:
        spec = req.json()
        if not isinstance(spec, dict):
            raise _bad("expected a JSON object")
        try:
            script_failures(state, int(spec.pop("count", 1)), **spec)
        except (TypeError, ValueError) as e:
            raise _bad(str(e))
        return Response(204)

    def servers(req: Request) -> Response:
        return Response(200, {"servers": server_snapshot(state)})

    router.add("GET", "/_fake/stats", get_stats)
    router.add("POST", "/_fake/stats/reset", reset_stats)
    router.add("GET", "/_fake/config", get_config)
    router.add("POST", "/_fake/config", set_config)
    router.add("POST", "/_fake/fail", fail)
    router.add("GET", "/_fake/servers", servers)
