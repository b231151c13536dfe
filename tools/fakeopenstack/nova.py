"""Nova (compute v2.1) of the local OpenStack: discovery, flavors, limits, AZs.

The server calls themselves live in :mod:`tools.fakeopenstack.servers`.
The API advertises microversions 2.1 to :data:`MAX_MICROVERSION`; the SDK
negotiates the highest one both sides know and sends it in
``OpenStack-API-Version``, which is echoed back.  Bodies follow the newest
format (e.g. the embedded server flavor of 2.47+) unless the request asks for
an older microversion where the difference matters to a client.

Errors use Nova's wire shapes (``{"itemNotFound": {"code", "message"}}``,
``{"badRequest": ...}``), so the SDK raises the same exception classes and
messages it raises against a real cloud.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState

__all__ = ["register", "microversion", "mv_headers", "not_found",
           "bad_request", "MAX_MICROVERSION", "COMPUTE"]

MAX_MICROVERSION = (2, 96)
COMPUTE = "/compute/v2.1"


def microversion(req: Request) -> tuple[int, int]:
    raw = req.header("OpenStack-API-Version")
    value = raw.split()[-1] if raw.lower().startswith("compute") else \
        req.header("X-OpenStack-Nova-API-Version")
    if not value:
        return (2, 1)
    if value == "latest":
        return MAX_MICROVERSION
    try:
        major, minor = (int(p) for p in value.split("."))
    except ValueError:
        raise bad_request(f"Version {value} is not supported by the API.")
    if (major, minor) > MAX_MICROVERSION or (major, minor) < (2, 1):
        raise ApiError(406, {"computeFault": {
            "code": 406,
            "message": f"Version {value} is not supported by the API. "
                       "Minimum is 2.1 and maximum is "
                       f"{MAX_MICROVERSION[0]}.{MAX_MICROVERSION[1]}."}})
    return (major, minor)


def mv_headers(req: Request) -> dict[str, str]:
    major, minor = microversion(req)
    return {"OpenStack-API-Version": f"compute {major}.{minor}",
            "X-OpenStack-Nova-API-Version": f"{major}.{minor}",
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}


def not_found(message: str) -> ApiError:
    return ApiError(404, {"itemNotFound": {"code": 404, "message": message}})


def bad_request(message: str) -> ApiError:
    return ApiError(400, {"badRequest": {"code": 400, "message": message}})


def _version(base: str) -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT",
            "version": "%d.%d" % MAX_MICROVERSION, "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}{COMPUTE}/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;"
                                     "version=2.1"}]}


def _flavor_body(state: CloudState, flavor: dict[str, Any],
                 detail: bool) -> dict[str, Any]:
    link = f"{state.base_url}{COMPUTE}/flavors/{flavor['id']}"
    links = [{"rel": "self", "href": link},
             {"rel": "bookmark", "href": link.replace("/v2.1", "")}]
    if not detail:
        return {"id": flavor["id"], "name": flavor["name"],
                "description": None, "links": links}
    return dict(flavor, links=links)


def _limits(state: CloudState, mv: tuple[int, int]) -> dict[str, Any]:
    s = state.settings
    with state.lock:
        state.tick()
        used = state.compute_usage()
    # 2.57 dropped file injection, and with it the personality limits.
    personality = {} if mv >= (2, 57) else {"maxPersonality": 5,
                                            "maxPersonalitySize": 10240}
    return {"limits": {"rate": [], "absolute": {
        **personality, "maxServerMeta": 128, "maxImageMeta": 128,
        "maxTotalKeypairs": 100, "maxServerGroups": 10,
        "maxServerGroupMembers": 10,
        "maxTotalInstances": s.max_instances, "maxTotalCores": s.max_cores,
        "maxTotalRAMSize": s.max_ram,
        "totalInstancesUsed": used["instances"],
        "totalCoresUsed": used["cores"], "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": 0}}}


def _new_keypair(name: str, public_key: str | None,
                 key_type: str) -> dict[str, Any]:
    """A keypair record; generates an ed25519 key when none is given."""
    private_key = None
    if not public_key:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        key = ed25519.Ed25519PrivateKey.generate()
        private_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()).decode()
        public_key = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH,
            serialization.PublicFormat.OpenSSH).decode() + f" {name}"
    try:
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (IndexError, ValueError):
        raise bad_request("Keypair data is invalid: failed to generate "
                          "fingerprint")
    digest = hashlib.md5(blob).hexdigest()
    record = {"name": name, "public_key": public_key, "type": key_type,
              "fingerprint": ":".join(digest[i:i + 2]
                                      for i in range(0, 32, 2))}
    if private_key:
        record["private_key"] = private_key
    return record


def _keypairs(router: Router, state: CloudState) -> None:
    def listing(req: Request) -> Response:
        with state.lock:
            items = [{"keypair": {k: v for k, v in kp.items()
                                  if k != "private_key"}}
                     for kp in state.keypairs.values()]
        return Response(200, {"keypairs": items}, headers=mv_headers(req))

    def create(req: Request) -> Response:
        spec = req.json().get("keypair") or {}
        name = spec.get("name")
        if not name:
            raise bad_request("Invalid input for field/attribute keypair.")
        record = _new_keypair(name, spec.get("public_key"),
                              spec.get("type", "ssh"))
        with state.lock:
            if name in state.keypairs:
                raise ApiError(409, {"conflictingRequest": {
                    "code": 409,
                    "message": f"Key pair '{name}' already exists."}})
            state.keypairs[name] = {k: v for k, v in record.items()
                                    if k != "private_key"}
        status = 201 if microversion(req) >= (2, 2) else 200
        body = {"keypair": dict(record, user_id=state.user_id)}
        return Response(status, body, headers=mv_headers(req))

    def one(req: Request) -> Response:
        name = req.params["name"]
        with state.lock:
            if name not in state.keypairs:
                raise not_found(f"Keypair {name} not found for user "
                                f"{state.user_id}")
            if req.method == "DELETE":
                del state.keypairs[name]
                status = 204 if microversion(req) >= (2, 2) else 202
                return Response(status, headers=mv_headers(req))
            body = dict(state.keypairs[name], user_id=state.user_id,
                        deleted=False, created_at="2024-01-01T00:00:00.000000",
                        id=1)
        return Response(200, {"keypair": body}, headers=mv_headers(req))

    router.add("GET", f"{COMPUTE}/os-keypairs", listing)
    router.add("POST", f"{COMPUTE}/os-keypairs", create)
    router.add("GET", f"{COMPUTE}/os-keypairs/{{name}}", one)
    router.add("DELETE", f"{COMPUTE}/os-keypairs/{{name}}", one)


def _server_security_groups(router: Router, state: CloudState) -> None:
    def handler(req: Request) -> Response:
        with state.lock:
            if req.params["server_id"] not in state.servers:
                raise not_found(
                    f"Instance {req.params['server_id']} could not be found.")
            groups = [{"id": g["id"], "name": g["name"], "description": "",
                       "tenant_id": state.project_id, "rules": []}
                      for g in state.security_groups.values()]
        return Response(200, {"security_groups": groups})

    router.add("GET", f"{COMPUTE}/servers/{{server_id}}/os-security-groups",
               handler)


def register(router: Router, state: CloudState) -> None:
    def versions(req: Request) -> Response:
        return Response(200, {"versions": [_version(state.base_url)]})

    def version(req: Request) -> Response:
        return Response(200, {"version": _version(state.base_url)})

    def flavors(detail: bool):
        def handler(req: Request) -> Response:
            body = [_flavor_body(state, f, detail) for f in state.flavors]
            return Response(200, {"flavors": body}, headers=mv_headers(req))
        return handler

    def flavor(req: Request) -> Response:
        found = state.find_flavor(req.params["flavor_id"])
        if found is None or found["id"] != req.params["flavor_id"]:
            raise not_found(
                f"Flavor {req.params['flavor_id']} could not be found.")
        return Response(200, {"flavor": _flavor_body(state, found, True)},
                        headers=mv_headers(req))

    def extra_specs(req: Request) -> Response:
        found = state.find_flavor(req.params["flavor_id"])
        if found is None:
            raise not_found(
                f"Flavor {req.params['flavor_id']} could not be found.")
        return Response(200, {"extra_specs": found["extra_specs"]})

    def limits(req: Request) -> Response:
        return Response(200, _limits(state, microversion(req)),
                        headers=mv_headers(req))

    def zones(detail: bool):
        def handler(req: Request) -> Response:
            info = [{"zoneName": zone, "zoneState": {"available": True},
                     "hosts": ({f"{zone}-compute-1": {"nova-compute": {
                         "available": True, "active": True,
                         "updated_at": None}}} if detail else None)}
                    for zone in state.availability_zones]
            return Response(200, {"availabilityZoneInfo": info},
                            headers=mv_headers(req))
        return handler

    router.add("GET", "/compute", versions)
    router.add("GET", COMPUTE, version)
    router.add("GET", f"{COMPUTE}/flavors", flavors(False))
    router.add("GET", f"{COMPUTE}/flavors/detail", flavors(True))
    router.add("GET", f"{COMPUTE}/flavors/{{flavor_id}}", flavor)
    router.add("GET", f"{COMPUTE}/flavors/{{flavor_id}}/os-extra_specs",
               extra_specs)
    router.add("GET", f"{COMPUTE}/limits", limits)
    router.add("GET", f"{COMPUTE}/os-availability-zone", zones(False))
    router.add("GET", f"{COMPUTE}/os-availability-zone/detail", zones(True))
    _keypairs(router, state)
    _server_security_groups(router, state)
