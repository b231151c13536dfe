"""Keystone v3 of the local OpenStack: discovery, password auth, the catalog.

keystoneauth first GETs ``/identity`` (or ``/identity/v3``) to discover the
API, then POSTs a password auth and keeps the ``X-Subject-Token`` until
shortly before ``expires_at``.  Every other service checks that token (see
:func:`authorize`); an unknown or expired token gets 401, on which
keystoneauth re-authenticates once and retries, just as with a real cloud.
Wrong credentials get 401 from the auth call, which the SDK reports as
``openstack.exceptions.HttpException`` during ``connect``.  Every password
auth is recorded in ``state.auth_log`` as ``(clock, accepted)``, so a test
can see how often a client asks for a token; ``LocalOpenStack.
set_password`` changes the password (and drops every token) at run time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState, utcnow_iso

__all__ = ["register", "authorize", "catalog", "DISCOVERY_TEMPLATES",
           "UNAUTHENTICATED_PREFIXES"]

# Version discovery and auth itself need no token; the control API neither.
UNAUTHENTICATED_PREFIXES = ("/_fake",)
DISCOVERY_TEMPLATES = frozenset({
    "/identity", "/identity/v3", "/identity/v3/auth/tokens",
    "/compute", "/compute/v2.1", "/image", "/image/versions", "/image/v2",
    "/networking", "/volume", "/volume/v3", "/volume/v3/{project_id}"})

_UNAUTHORIZED = {"error": {
    "code": 401, "title": "Unauthorized",
    "message": "The request you have made requires authentication."}}


def _version(base: str) -> dict[str, Any]:
    return {"id": "v3.14", "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
            "media-types": [{
                "base": "application/json",
                "type": "application/vnd.openstack.identity-v3+json"}]}


def catalog(state: CloudState) -> list[dict[str, Any]]:
    base = state.base_url
    services = [
        ("identity", "keystone", f"{base}/identity"),
        ("compute", "nova", f"{base}/compute/v2.1"),
        ("image", "glance", f"{base}/image"),
        ("network", "neutron", f"{base}/networking"),
        ("block-storage", "cinder", f"{base}/volume/v3/{state.project_id}"),
        ("volumev3", "cinderv3", f"{base}/volume/v3/{state.project_id}"),
    ]
    return [{"id": uuid.uuid5(uuid.NAMESPACE_URL, kind).hex, "type": kind,
             "name": name,
             "endpoints": [{"id": uuid.uuid5(uuid.NAMESPACE_URL,
                                             kind + region + iface).hex,
                            "interface": iface, "region": region,
                            "region_id": region, "url": url}
                           for region in state.regions
                           for iface in ("public", "internal")]}
            for kind, name, url in services]


def _token_body(state: CloudState, expires: datetime) -> dict[str, Any]:
    domain = {"id": "default", "name": "Default"}
    return {"token": {
        "methods": ["password"],
        "user": {"domain": domain, "id": state.user_id,
                 "name": state.username, "password_expires_at": None},
        "audit_ids": [uuid.uuid4().hex[:22]],
        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "issued_at": utcnow_iso(with_micro=True),
        "project": {"domain": domain, "id": state.project_id,
                    "name": state.project_name},
        "is_domain": False,
        "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_URL, r).hex, "name": r}
                  for r in ("member", "reader")],
        "catalog": catalog(state)}}


def _check_password(state: CloudState, body: dict[str, Any]) -> None:
    identity = body.get("auth", {}).get("identity", {})
    user = identity.get("password", {}).get("user", {})
    name_ok = user.get("name") == state.username or \
        user.get("id") == state.user_id
    if "password" not in identity.get("methods", []) or not name_ok or \
            user.get("password") != state.password:
        raise ApiError(401, _UNAUTHORIZED)
    scope = body["auth"].get("scope", {}).get("project", {})
    if scope and scope.get("name", state.project_name) != state.project_name \
            and scope.get("id") != state.project_id:
        raise ApiError(401, _UNAUTHORIZED)


def authorize(state: CloudState, request: Request, template: str) -> None:
    """Raise 401 unless the request carries a live token."""
    if template.startswith(UNAUTHENTICATED_PREFIXES) or \
            template in DISCOVERY_TEMPLATES:
        return
    token = request.header("X-Auth-Token")
    with state.lock:
        expiry = state.tokens.get(token)
        if expiry is None or expiry <= state.clock():
            raise ApiError(401, _UNAUTHORIZED)


def register(router: Router, state: CloudState) -> None:
    def versions(req: Request) -> Response:
        return Response(300, {"versions": {"values": [
            _version(state.base_url)]}})

    def version(req: Request) -> Response:
        return Response(200, {"version": _version(state.base_url)})

    def issue(req: Request) -> Response:
        try:
            _check_password(state, req.json())
        except ApiError:
            with state.lock:
                state.auth_log.append((state.clock(), False))
            raise
        with state.lock:
            state.auth_log.append((state.clock(), True))
        token = uuid.uuid4().hex
        ttl = state.settings.token_ttl
        with state.lock:
            state.tokens[token] = state.clock() + ttl
        expires = datetime.now(timezone.utc) + timedelta(seconds=ttl)
        return Response(201, _token_body(state, expires),
                        headers={"X-Subject-Token": token})

    def validate(req: Request) -> Response:
        token = req.header("X-Subject-Token")
        with state.lock:
            expiry = state.tokens.get(token)
            if expiry is None or expiry <= state.clock():
                raise ApiError(404, {"error": {
                    "code": 404, "title": "Not Found",
                    "message": "Could not find token."}})
            remaining = expiry - state.clock()
        expires = datetime.now(timezone.utc) + timedelta(seconds=remaining)
        return Response(200, _token_body(state, expires),
                        headers={"X-Subject-Token": token})

    def revoke(req: Request) -> Response:
        with state.lock:
            state.tokens.pop(req.header("X-Subject-Token"), None)
        return Response(204)

    def project_body() -> dict[str, Any]:
        return {"id": state.project_id, "name": state.project_name,
                "domain_id": "default", "enabled": True, "is_domain": False,
                "parent_id": "default", "description": "", "tags": [],
                "options": {}, "links": {"self": f"{state.base_url}"
                                        f"/identity/v3/projects/"
                                        f"{state.project_id}"}}

    def projects(req: Request) -> Response:
        found = [project_body()]
        for key in ("name", "id", "domain_id"):
            wanted = req.arg(key)
            if wanted is not None:
                found = [p for p in found if p[key] == wanted]
        return Response(200, {"projects": found, "links": {
            "next": None, "previous": None, "self": ""}})

    def project(req: Request) -> Response:
        if req.params["project_id"] not in (state.project_id,
                                            state.project_name):
            raise ApiError(404, {"error": {
                "code": 404, "title": "Not Found",
                "message": "Could not find project: "
                           f"{req.params['project_id']}."}})
        return Response(200, {"project": project_body()})

    def auth_catalog(req: Request) -> Response:
        return Response(200, {"catalog": catalog(state)})

    router.add("GET", "/identity", versions)
    router.add("GET", "/identity/v3", version)
    router.add("POST", "/identity/v3/auth/tokens", issue)
    router.add("GET", "/identity/v3/auth/tokens", validate)
    router.add("HEAD", "/identity/v3/auth/tokens", validate)
    router.add("DELETE", "/identity/v3/auth/tokens", revoke)
    router.add("GET", "/identity/v3/auth/projects", projects)
    router.add("GET", "/identity/v3/auth/catalog", auth_catalog)
    router.add("GET", "/identity/v3/projects", projects)
    router.add("GET", "/identity/v3/projects/{project_id}", project)
