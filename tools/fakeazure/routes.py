"""Request routing for the fake ARM: path templates, the call and the reply.

Templates are written as in the Azure REST specs
(``/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}``).
Literal segments match case-insensitively because ARM paths are
case-insensitive (the SDKs send ``resourcegroups`` in some places and
``resourceGroups`` in others).  The template string is also the key under
which calls are counted in ``/_fake/stats``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from .store import ArmError

if TYPE_CHECKING:  # pragma: no cover
    from .server import LocalAzure


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One parsed request, handed to a route function."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    azure: "LocalAzure"
    params: dict[str, str] = field(default_factory=dict)
    template: str = ""

    def q(self, name: str) -> Optional[str]:
        """A query parameter, looked up case-insensitively."""
        for key, value in self.query.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> dict:
        """The body as a JSON object, or a 400 as ARM would send."""
        try:
            body = json.loads(self.raw_body or b"null")
        except ValueError as exc:
            raise ArmError(400, "InvalidRequestContent",
                           f"The request content was invalid: {exc}")
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent",
                           "The request content must be a JSON object.")
        return body

    @property
    def api_version(self) -> str:
        return self.q("api-version") or ""


RouteFn = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern
    fn: RouteFn


def _compile(template: str) -> re.Pattern:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$", re.IGNORECASE)


class Router:
    """Maps (method, path) to a route; first registered match wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, fn: RouteFn) -> None:
        self._routes.append(Route(method.upper(), template,
                                  _compile(template), fn))

    def match(self, method: str, path: str
              ) -> Optional[tuple[Route, dict[str, str]]]:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None
