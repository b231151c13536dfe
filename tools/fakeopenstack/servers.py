"""Nova servers of the local OpenStack: create, list, show, delete, actions.

Failure story, as a client sees it:

* ``POST servers`` sleeps ``create_latency`` (without the state lock, so
  concurrent creates overlap), then consumes the next scripted
  :class:`~tools.fakeopenstack.records.CreateFailure` if any: an HTTP error,
  Nova's quota 403, or servers that end in ERROR with a ``fault``.
* Real quota enforcement: when ``min_count`` more servers would exceed
  instances, cores or RAM, the answer is 403
  ``{"forbidden": {"message": "Quota exceeded for cores: Requested 4, but
  already used 398 of 400 cores", "code": 403}}``; when only some of
  ``max_count`` fit, only those are created (Nova's multi-create rule).
* Boot-from-volume beyond the Cinder quota is accepted and the server ends in
  ERROR with a VolumeLimitExceeded fault, because Nova only learns about it
  while building.
* A deleted server keeps its status with task_state "deleting" for
  ``delete_time`` seconds, then is gone: 404 ``itemNotFound``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tools.fakeopenstack.create import create_handler
from tools.fakeopenstack.nova import (COMPUTE, bad_request, microversion,
                                      mv_headers, not_found)
from tools.fakeopenstack.records import ServerRecord
from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState, utcnow_iso

__all__ = ["register", "server_body"]

MAX_LIMIT = 1000          # Nova's default osapi max_limit
_VM_STATE = {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}


def _links(state: CloudState, kind: str, rid: str) -> list[dict[str, str]]:
    href = f"{state.base_url}{COMPUTE}/{kind}/{rid}"
    return [{"rel": "self", "href": href},
            {"rel": "bookmark", "href": href.replace("/v2.1", "")}]


def _addresses(state: CloudState, server: ServerRecord
               ) -> dict[str, list[dict[str, Any]]]:
    if server.status != "ACTIVE":
        return {}
    result: dict[str, list[dict[str, Any]]] = {}
    for port_id in server.port_ids:
        port = state.ports.get(port_id)
        if port is None:
            continue
        entries = result.setdefault(state.networks[port["network_id"]]["name"],
                                    [])
        for fixed in port["fixed_ips"]:
            version = 6 if ":" in fixed["ip_address"] else 4
            entries.append({"version": version, "addr": fixed["ip_address"],
                            "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        for fip in state.floating_ips.values():
            if fip["port_id"] == port_id:
                entries.append({
                    "version": 4, "addr": fip["floating_ip_address"],
                    "OS-EXT-IPS:type": "floating",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
    return result


def _flavor(state: CloudState, server: ServerRecord,
            mv: tuple[int, int]) -> dict[str, Any]:
    f = server.flavor
    if mv < (2, 47):
        return {"id": f["id"], "links": _links(state, "flavors", f["id"])}
    return {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
            "ephemeral": f["OS-FLV-EXT-DATA:ephemeral"], "swap": f["swap"],
            "original_name": f["name"], "extra_specs": dict(f["extra_specs"])}


def server_body(state: CloudState, server: ServerRecord,
                mv: tuple[int, int]) -> dict[str, Any]:
    image: Any = ""
    if server.image_id:
        image = {"id": server.image_id,
                 "links": _links(state, "images", server.image_id)[1:]}
    status = server.status
    body = {
        "id": server.id, "name": server.name, "status": status,
        "tenant_id": server.project_id, "user_id": server.user_id,
        "metadata": dict(server.metadata),
        "hostId": state.host_id(server.host) if status != "ERROR" else "",
        "image": image, "flavor": _flavor(state, server, mv),
        "created": server.created, "updated": server.updated,
        "addresses": _addresses(state, server),
        "accessIPv4": server.access_ipv4, "accessIPv6": "",
        "links": _links(state, "servers", server.id),
        "OS-DCF:diskConfig": "MANUAL", "progress": 0,
        "OS-EXT-AZ:availability_zone": server.availability_zone,
        "config_drive": "True" if server.config_drive else "",
        "key_name": server.key_name,
        "OS-SRV-USG:launched_at": server.launched_at,
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": _VM_STATE[status],
        "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
        "os-extended-volumes:volumes_attached": [
            {"id": vid, "delete_on_termination": dot}
            for vid, dot in server.volumes],
        "locked": False, "locked_reason": None, "description": None,
        "tags": [], "trusted_image_certificates": None,
        "server_groups": [], "pinned_availability_zone": None,
    }
    if server.fault and status == "ERROR":
        body["fault"] = dict(server.fault)
    return body


def _get(state: CloudState, server_id: str) -> ServerRecord:
    server = state.servers.get(server_id)
    if server is None:
        raise not_found(f"Instance {server_id} could not be found.")
    return server


def _search(pattern: str, text: str) -> bool:
    """Nova matches name and ip filters as regular expressions."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        raise bad_request(f"Invalid filter regular expression: {pattern}")


def _matches(state: CloudState, server: ServerRecord, req: Request) -> bool:
    name = req.arg("name")
    if name and not _search(name, server.name):
        return False
    checks = {"status": server.status, "reservation_id":
              server.reservation_id, "availability_zone":
              server.availability_zone, "flavor": server.flavor["id"],
              "image": server.image_id, "key_name": server.key_name or ""}
    for key, actual in checks.items():
        wanted = req.arg(key)
        if not wanted:
            continue
        if (wanted.upper() if key == "status" else wanted) != actual:
            return False
    ip = req.arg("ip")
    if ip:
        addrs = [a["addr"] for net in _addresses(state, server).values()
                 for a in net]
        if not any(_search(ip, a) for a in addrs):
            return False
    return True


def _page(req: Request, servers: list[ServerRecord]
          ) -> tuple[list[ServerRecord], str | None]:
    marker = req.arg("marker")
    if marker:
        ids = [s.id for s in servers]
        if marker not in ids:
            raise bad_request(f"marker [{marker}] not found")
        servers = servers[ids.index(marker) + 1:]
    try:
        limit = min(int(req.arg("limit") or MAX_LIMIT), MAX_LIMIT)
    except ValueError:
        raise bad_request("limit param must be an integer")
    if len(servers) > limit or (req.arg("limit") and len(servers) == limit
                                and limit > 0):
        page = servers[:limit]
        return page, page[-1].id if page else None
    return servers, None


def _list(state: CloudState, detail: bool):
    def handler(req: Request) -> Response:
        mv = microversion(req)
        with state.lock:
            state.tick()
            # Nova sorts by created_at descending.
            found = [s for s in reversed(state.servers.values())
                     if _matches(state, s, req)]
            page, last = _page(req, found)
            if detail:
                items = [server_body(state, s, mv) for s in page]
            else:
                items = [{"id": s.id, "name": s.name,
                          "links": _links(state, "servers", s.id)}
                         for s in page]
        body: dict[str, Any] = {"servers": items}
        if last:
            query = {k: v[-1] for k, v in req.query.items() if k != "marker"}
            query.update(marker=last, limit=str(len(page)))
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next", "href":
                                      f"{state.base_url}{COMPUTE}/{path}?" +
                                      "&".join(f"{k}={v}"
                                               for k, v in query.items())}]
        return Response(200, body, headers=mv_headers(req))
    return handler


def _show(state: CloudState):
    def handler(req: Request) -> Response:
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            body = server_body(state, server, microversion(req))
        return Response(200, {"server": body}, headers=mv_headers(req))
    return handler


def _update(state: CloudState):
    def handler(req: Request) -> Response:
        changes = req.json().get("server", {})
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            if "name" in changes:
                server.name = changes["name"]
            if "accessIPv4" in changes:
                server.access_ipv4 = changes["accessIPv4"]
            server.updated = utcnow_iso()
            body = server_body(state, server, microversion(req))
        return Response(200, {"server": body}, headers=mv_headers(req))
    return handler


def _delete(state: CloudState):
    def handler(req: Request) -> Response:
        if state.settings.delete_latency:
            time.sleep(state.settings.delete_latency)
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            if server.gone_at is None:
                server.task_state = "deleting"
                server.gone_at = state.clock() + state.settings.delete_time
                state.tick()
        return Response(204, headers=mv_headers(req))
    return handler


def _console(state: CloudState, server: ServerRecord,
             args: dict[str, Any] | None) -> Response:
    if server.status != "ACTIVE":
        raise ApiError(409, {"conflictingRequest": {
            "code": 409,
            "message": "Cannot 'get_console_output' instance "
                       f"{server.id} while it is in vm_state "
                       f"{_VM_STATE[server.status]}"}})
    text = state.settings.console_output.format(name=server.name,
                                                id=server.id)
    length = (args or {}).get("length")
    if length not in (None, "", -1, "-1"):
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-int(length):]) if int(length) else ""
    return Response(200, {"output": text})


def _action(state: CloudState):
    def handler(req: Request) -> Response:
        body = req.json()
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            if "os-getConsoleOutput" in body:
                return _console(state, server, body["os-getConsoleOutput"])
        action = next(iter(body), "")
        raise bad_request(f"There is no such action: {action}")
    return handler


def _metadata(state: CloudState):
    def handler(req: Request) -> Response:
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            if req.method != "GET":
                given = req.json().get("metadata")
                if not isinstance(given, dict):
                    raise bad_request("Malformed request body")
                if req.method == "PUT":
                    server.metadata = {}
                server.metadata.update({k: str(v) for k, v in given.items()})
                server.updated = utcnow_iso()
            return Response(200, {"metadata": dict(server.metadata)})
    return handler


def _metadata_item(state: CloudState):
    def handler(req: Request) -> Response:
        key = req.params["key"]
        with state.lock:
            state.tick()
            server = _get(state, req.params["server_id"])
            if req.method == "PUT":
                meta = req.json().get("meta") or {}
                if list(meta) != [key]:
                    raise bad_request("Request body and URI mismatch")
                server.metadata[key] = str(meta[key])
            elif key not in server.metadata:
                raise not_found("Metadata item was not found")
            if req.method == "DELETE":
                del server.metadata[key]
                return Response(204)
            return Response(200, {"meta": {key: server.metadata[key]}})
    return handler


def register(router: Router, state: CloudState) -> None:
    base = f"{COMPUTE}/servers"
    one = f"{base}/{{server_id}}"
    router.add("POST", base, create_handler(state))
    router.add("GET", base, _list(state, False))
    router.add("GET", f"{base}/detail", _list(state, True))
    router.add("GET", one, _show(state))
    router.add("PUT", one, _update(state))
    router.add("DELETE", one, _delete(state))
    router.add("POST", f"{one}/action", _action(state))
    for method in ("GET", "POST", "PUT"):
        router.add(method, f"{one}/metadata", _metadata(state))
    for method in ("GET", "PUT", "DELETE"):
        router.add(method, f"{one}/metadata/{{key}}", _metadata_item(state))

