"""Neutron v2.0 of the local OpenStack: networks, ports, floating IPs, quotas.

Filtering follows Neutron: any query parameter naming a field filters on it,
a repeated parameter means "any of these values", booleans compare as
``True``/``False``, and ``fixed_ips=ip_address=X`` filters ports by address.
``fields`` and unknown keys are ignored.

Leak scenarios for the launcher's cleanup: ``POST /v2.0/ports`` (or
``LocalOpenStack.add_port``) makes an unbound port, which Neutron reports
DOWN; ``leak_ports_on_delete`` leaves a deleted server's ports behind DOWN.
A floating IP whose port goes away is disassociated (status DOWN), which is
how leaked floating IPs look in a real cloud.

Errors use Neutron's ``{"NeutronError": {"type", "message", "detail"}}``.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState, utcnow_iso

__all__ = ["register"]

NET = "/networking/v2.0"
_IGNORED = {"fields", "limit", "marker", "sort_key", "sort_dir",
            "page_reverse", "fixed_ips"}
EXTENSIONS = ["agent", "allowed-address-pairs", "availability_zone",
              "binding", "dns-integration", "external-net", "extra_dhcp_opt",
              "extraroute", "fip-port-details", "floatingip-pools", "router",
              "network_availability_zone", "port-security", "project-id",
              "quotas", "quota_details", "security-group",
              "standard-attr-description", "standard-attr-revisions",
              "standard-attr-tag", "standard-attr-timestamp",
              "subnet_allocation", "net-mtu", "ext-gw-mode"]


def error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind,
                                              "message": message,
                                              "detail": ""}})


def _matches(item: dict[str, Any], req: Request) -> bool:
    for key, wanted in req.query.items():
        if key in _IGNORED or key not in item:
            continue
        wanted_norm = {w.lower() if w.lower() in ("true", "false") else w
                       for w in wanted}
        actual = str(item[key])
        if actual.lower() in ("true", "false"):
            actual = actual.lower()
        if actual not in wanted_norm:
            return False
    for spec in req.query.get("fixed_ips", []):
        key, _, value = spec.partition("=")
        if not any(ip.get(key) == value for ip in item.get("fixed_ips", [])):
            return False
    return True


def _collection(state: CloudState, plural: str,
                store: Callable[[], dict[str, dict[str, Any]]]):
    def listing(req: Request) -> Response:
        with state.lock:
            state.tick()
            found = [copy.deepcopy(i) for i in store().values()
                     if _matches(i, req)]
        marker = req.arg("marker")
        if marker:
            ids = [i["id"] for i in found]
            found = found[ids.index(marker) + 1:] if marker in ids else []
        body: dict[str, Any] = {plural: found}
        limit = req.arg("limit")
        if limit and int(limit) < len(found):
            body[plural] = found[:int(limit)]
            body[f"{plural}_links"] = [{"rel": "next", "href": (
                f"{state.base_url}{NET}/{plural.replace('_', '-')}?"
                f"limit={limit}&marker={found[int(limit) - 1]['id']}")}]
        return Response(200, body)
    return listing


def _show(state: CloudState, singular: str, kind: str,
          store: Callable[[], dict[str, dict[str, Any]]]):
    def show(req: Request) -> Response:
        with state.lock:
            state.tick()
            item = store().get(req.params["rid"])
            if item is None:
                raise error(404, f"{kind}NotFound",
                            f"{kind} {req.params['rid']} could not be found.")
            return Response(200, {singular: copy.deepcopy(item)})
    return show


def _ports(router: Router, state: CloudState) -> None:
    def create(req: Request) -> Response:
        spec = req.json().get("port") or {}
        with state.lock:
            if spec.get("network_id") not in state.networks:
                raise error(404, "NetworkNotFound",
                            f"Network {spec.get('network_id')} could not be "
                            "found.")
            port = state.create_port(
                spec["network_id"], device_id=spec.get("device_id", ""),
                device_owner=spec.get("device_owner", ""),
                name=spec.get("name", ""))
            return Response(201, {"port": copy.deepcopy(port)})

    def update(req: Request) -> Response:
        spec = req.json().get("port") or {}
        with state.lock:
            port = _existing(state.ports, req.params["rid"], "Port")
            for key in ("name", "device_id", "device_owner", "description",
                        "admin_state_up"):
                if key in spec:
                    port[key] = spec[key]
            port["updated_at"] = utcnow_iso()
            return Response(200, {"port": copy.deepcopy(port)})

    def delete(req: Request) -> Response:
        with state.lock:
            _existing(state.ports, req.params["rid"], "Port")
            state.delete_port(req.params["rid"])
            for server in state.servers.values():
                if req.params["rid"] in server.port_ids:
                    server.port_ids.remove(req.params["rid"])
        return Response(204)

    router.add("POST", f"{NET}/ports", create)
    router.add("PUT", f"{NET}/ports/{{rid}}", update)
    router.add("DELETE", f"{NET}/ports/{{rid}}", delete)


def _existing(store: dict[str, dict[str, Any]], rid: str,
              kind: str) -> dict[str, Any]:
    if rid not in store:
        raise error(404, f"{kind}NotFound",
                    f"{kind} {rid} could not be found.")
    return store[rid]


def _associate(state: CloudState, fip: dict[str, Any],
               spec: dict[str, Any]) -> None:
    port_id = spec.get("port_id")
    if not port_id:
        state.associate_floating_ip(fip, None, None)
        return
    port = _existing(state.ports, port_id, "Port")
    addresses = [ip["ip_address"] for ip in port["fixed_ips"]]
    fixed = spec.get("fixed_ip_address") or addresses[0]
    if fixed not in addresses:
        raise error(400, "BadRequest", f"Port {port_id} does not have fixed "
                    f"ip {fixed}")
    if port["network_id"] != state.private_network["id"]:
        raise error(404, "ExternalGatewayForFloatingIPNotFound",
                    "External network is not reachable from subnet of port "
                    f"{port_id}.")
    state.associate_floating_ip(fip, port_id, fixed)


def _floating_ips(router: Router, state: CloudState) -> None:
    def create(req: Request) -> Response:
        spec = req.json().get("floatingip") or {}
        with state.lock:
            net = _existing(state.networks,
                            spec.get("floating_network_id", ""), "Network")
            if not net["router:external"]:
                raise error(400, "BadRequest", f"Network {net['id']} is not "
                            "a valid external network")
            fip = state.create_floating_ip(net["id"])
            try:
                _associate(state, fip, spec)
            except ApiError:
                del state.floating_ips[fip["id"]]
                raise
            return Response(201, {"floatingip": copy.deepcopy(fip)})

    def update(req: Request) -> Response:
        spec = req.json().get("floatingip") or {}
        with state.lock:
            fip = _existing(state.floating_ips, req.params["rid"],
                            "FloatingIP")
            _associate(state, fip, spec)
            return Response(200, {"floatingip": copy.deepcopy(fip)})

    def delete(req: Request) -> Response:
        with state.lock:
            _existing(state.floating_ips, req.params["rid"], "FloatingIP")
            del state.floating_ips[req.params["rid"]]
        return Response(204)

    router.add("POST", f"{NET}/floatingips", create)
    router.add("PUT", f"{NET}/floatingips/{{rid}}", update)
    router.add("DELETE", f"{NET}/floatingips/{{rid}}", delete)


def _quotas(state: CloudState, details: bool) -> dict[str, Any]:
    limits = {"network": 100, "subnet": 100, "port": 500, "router": 10,
              "floatingip": 50, "security_group": 10,
              "security_group_rule": 100, "rbac_policy": 10,
              "subnetpool": -1}
    if not details:
        return {"quota": limits}
    used = {"network": len(state.networks), "subnet": len(state.subnets),
            "port": len(state.ports), "router": len(state.routers),
            "floatingip": len(state.floating_ips),
            "security_group": len(state.security_groups)}
    return {"quota": {k: {"limit": v, "used": used.get(k, 0), "reserved": 0}
                      for k, v in limits.items()}}


def register(router: Router, state: CloudState) -> None:
    def versions(req: Request) -> Response:
        return Response(200, {"versions": [{
            "id": "v2.0", "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{state.base_url}{NET}/"}]}]})

    def resources(req: Request) -> Response:
        return Response(200, {"resources": [
            {"name": n, "collection": n + "s", "links": []}
            for n in ("network", "subnet", "port", "floatingip", "router")]})

    def extensions(req: Request) -> Response:
        return Response(200, {"extensions": [
            {"alias": a, "name": a, "description": a, "links": [],
             "updated": "2020-01-01T00:00:00-00:00"} for a in EXTENSIONS]})

    def quota(details: bool):
        def handler(req: Request) -> Response:
            with state.lock:
                state.tick()
                return Response(200, _quotas(state, details))
        return handler

    router.add("GET", "/networking", versions)
    router.add("GET", NET, resources)
    router.add("GET", f"{NET}/extensions", extensions)
    stores = [("networks", "network", "Network", lambda: state.networks),
              ("subnets", "subnet", "Subnet", lambda: state.subnets),
              ("ports", "port", "Port", lambda: state.ports),
              ("floatingips", "floatingip", "FloatingIP",
               lambda: state.floating_ips),
              ("routers", "router", "Router", lambda: state.routers),
              ("security-groups", "security_group", "SecurityGroup",
               lambda: state.security_groups)]
    for path, singular, kind, store in stores:
        plural = path.replace("-", "_")
        router.add("GET", f"{NET}/{path}", _collection(state, plural, store))
        router.add("GET", f"{NET}/{path}/{{rid}}",
                   _show(state, singular, kind, store))
    _ports(router, state)
    _floating_ips(router, state)
    router.add("GET", f"{NET}/quotas/{{project_id}}", quota(False))
    router.add("GET", f"{NET}/quotas/{{project_id}}/details", quota(True))
