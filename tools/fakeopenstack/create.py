"""``POST /compute/v2.1/servers``: validation, quota, multi-create, BFV.

The order of events is Nova's: validate the request (400s), check the
compute quota (403, or fewer servers than ``max_count``), then create the
records and their ports and volumes and answer 202.  The scripted failures
of :class:`~tools.fakeopenstack.records.CreateFailure` are consumed one per
request, before validation, so "the next N creates fail" holds even for
requests that would have been invalid.

Multi-create follows Nova: ``min_count``..``max_count`` servers sharing one
``reservation_id``, named ``name-1``..``name-N`` when more than one is made,
and ``return_reservation_id`` answers ``{"reservation_id": ...}`` instead of
the first server.
"""

from __future__ import annotations

import base64
import binascii
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tools.fakeopenstack.nova import COMPUTE, bad_request, microversion, \
    mv_headers
from tools.fakeopenstack.records import CreateFailure, ServerRecord
from tools.fakeopenstack.routing import ApiError, Request, Response
from tools.fakeopenstack.state import CloudState, new_id, utcnow_iso

__all__ = ["create_handler"]

NO_VALID_HOST = ("No valid host was found. There are not enough hosts "
                 "available.")


@dataclass
class _Spec:
    """A validated create request."""
    name: str
    flavor: dict[str, Any]
    image_id: str
    min_count: int
    max_count: int
    zone: str | None
    metadata: dict[str, str]
    key_name: str | None
    user_data: str | None
    config_drive: bool
    access_ipv4: str
    return_reservation_id: bool
    # (network id, existing port id or None)
    nics: list[tuple[str, str | None]] = field(default_factory=list)
    # Volumes to make: (size GB, image id or None, delete_on_termination)
    new_volumes: list[tuple[int, str | None, bool]] = \
        field(default_factory=list)


def _count(body: dict[str, Any], key: str) -> int:
    try:
        value = int(body.get(key, 1))
    except (TypeError, ValueError):
        raise bad_request(f"Invalid input for field/attribute {key}.")
    if value < 1:
        raise bad_request(f"Invalid input for field/attribute {key}. "
                          f"Value: {value}. {value} is less than the minimum "
                          "of 1")
    return value


def _image(state: CloudState, body: dict[str, Any],
           bdms: list[dict[str, Any]]) -> str:
    ref = body.get("imageRef") or ""
    boots_from_bdm = any(str(b.get("boot_index")) == "0" for b in bdms)
    if not ref:
        if not boots_from_bdm:
            raise bad_request("Missing imageRef attribute")
        return ""
    if state.find_image(ref) is None:
        raise bad_request("Can not find requested image")
    return ref.rstrip("/").rsplit("/", 1)[-1]


def _nics(state: CloudState, body: dict[str, Any], mv: tuple[int, int],
          max_count: int) -> list[tuple[str, str | None]]:
    networks = body.get("networks")
    if networks is None:
        if mv >= (2, 37):
            raise bad_request("Invalid input for field/attribute server. "
                              "'networks' is a required property")
        networks = "auto"
    if networks == "none":
        return []
    if networks == "auto":
        return [(state.private_network["id"], None)]
    if not isinstance(networks, list):
        raise bad_request("Invalid input for field/attribute networks.")
    nics: list[tuple[str, str | None]] = []
    for entry in networks:
        port_id = entry.get("port")
        if port_id:
            port = state.ports.get(port_id)
            if port is None:
                raise bad_request(f"Port id {port_id} could not be found.")
            if port["device_id"]:
                raise ApiError(409, {"conflictingRequest": {
                    "code": 409,
                    "message": f"Port {port_id} is still in use."}})
            if max_count > 1:
                raise bad_request(
                    "Unable to launch multiple instances with a single "
                    "configured port ID. Please launch your instance one by "
                    "one with different ports.")
            nics.append((port["network_id"], port_id))
            continue
        net_id = entry.get("uuid")
        if net_id not in state.networks:
            raise bad_request(f"Network {net_id} could not be found.")
        nics.append((net_id, None))
    return nics


def _volumes(state: CloudState, bdms: list[dict[str, Any]]
             ) -> list[tuple[int, str | None, bool]]:
    wanted = []
    for bdm in bdms:
        if bdm.get("destination_type", "volume") != "volume":
            continue
        source = bdm.get("source_type")
        if source == "image":
            if state.find_image(bdm.get("uuid") or "") is None:
                raise bad_request(f"Image {bdm.get('uuid')} could not be "
                                  "found.")
        elif source != "blank":
            raise bad_request(f"The fake supports source_type image or "
                              f"blank for new volumes, not {source}")
        try:
            size = int(bdm.get("volume_size") or 0)
        except ValueError:
            raise bad_request("Invalid volume_size")
        if size < 1:
            raise bad_request("Block Device Mapping is Invalid: "
                              "volume_size is required.")
        delete = str(bdm.get("delete_on_termination")).lower() == "true"
        wanted.append((size, bdm.get("uuid") if source == "image" else None,
                       delete))
    return wanted


def _parse(state: CloudState, body: dict[str, Any],
           mv: tuple[int, int]) -> _Spec:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("Invalid input for field/attribute name.")
    if "flavorRef" not in body:
        raise bad_request("Invalid input for field/attribute server. "
                          "'flavorRef' is a required property")
    flavor = state.find_flavor(str(body["flavorRef"]))
    if flavor is None:
        raise bad_request(f"Flavor {body['flavorRef']} could not be found.")
    bdms = body.get("block_device_mapping_v2") or []
    min_count, max_count = _count(body, "min_count"), _count(body,
                                                             "max_count")
    if min_count > max_count:
        raise bad_request("min_count must be <= max_count")
    zone = (body.get("availability_zone") or "").split(":")[0] or None
    if zone is not None and zone not in state.availability_zones:
        raise bad_request("The requested availability zone is not available")
    key_name = body.get("key_name")
    if key_name and state.settings.require_keypair and \
            key_name not in state.keypairs:
        raise bad_request("Invalid key_name provided.")
    user_data = body.get("user_data")
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("User data needs to be valid base 64.")
    return _Spec(
        name=name, flavor=flavor, image_id=_image(state, body, bdms),
        min_count=min_count, max_count=max_count, zone=zone,
        metadata={k: str(v) for k, v in (body.get("metadata") or {}).items()},
        key_name=key_name, user_data=user_data,
        config_drive=str(body.get("config_drive")).lower() == "true",
        access_ipv4=body.get("accessIPv4") or "",
        return_reservation_id=str(
            body.get("return_reservation_id")).lower() == "true",
        nics=_nics(state, body, mv, max_count),
        new_volumes=_volumes(state, bdms))


def _quota_error(resource: str, requested: int, used: int,
                 allowed: int) -> ApiError:
    return ApiError(403, {"forbidden": {"code": 403, "message": (
        f"Quota exceeded for {resource}: Requested {requested}, but already "
        f"used {used} of {allowed} {resource}")}})


def _allowed_count(state: CloudState, spec: _Spec) -> int:
    """How many of max_count fit the quota; 403 if fewer than min_count."""
    s = state.settings
    used = state.compute_usage()
    per = {"instances": 1, "cores": spec.flavor["vcpus"],
           "ram": spec.flavor["ram"]}
    limit = {"instances": s.max_instances, "cores": s.max_cores,
             "ram": s.max_ram}
    allowed, tightest = spec.max_count, None
    for resource in ("instances", "cores", "ram"):
        if limit[resource] < 0 or per[resource] == 0:
            continue
        fit = max(0, (limit[resource] - used[resource]) // per[resource])
        if fit < allowed:
            allowed, tightest = fit, resource
    if allowed < spec.min_count and tightest is not None:
        raise _quota_error(tightest, per[tightest] * spec.max_count,
                           used[tightest], limit[tightest])
    return allowed


def _attach_volumes(state: CloudState, server: ServerRecord,
                    spec: _Spec) -> None:
    s = state.settings
    for size, image_id, delete in spec.new_volumes:
        count, gigabytes = state.volume_usage()
        if 0 <= s.max_volumes <= count or 0 <= s.max_volume_gb < \
                gigabytes + size:
            resource, limit = (("volumes", s.max_volumes)
                               if 0 <= s.max_volumes <= count
                               else ("gigabytes", s.max_volume_gb))
            server.outcome = "ERROR"
            server.fault = _fault(500, (
                f"Build of instance {server.id} aborted: VolumeLimitExceeded:"
                f" Maximum number of {resource} allowed ({limit}) exceeded "
                f"for quota '{resource}'."))
            return
        volume = state.create_volume(size, image_id=image_id,
                                     status="in-use")
        volume["attachments"] = [{
            "server_id": server.id, "attachment_id": new_id(),
            "volume_id": volume["id"], "id": volume["id"],
            "device": "/dev/vda", "host_name": server.host,
            "attached_at": utcnow_iso()}]
        server.volumes.append((volume["id"], delete))


def _fault(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "created": utcnow_iso(),
            "details": "fake OpenStack scripted fault"}


def _build(state: CloudState, spec: _Spec, index: int, count: int,
           reservation_id: str, failure: CreateFailure | None
           ) -> ServerRecord:
    zone = spec.zone or state.next_zone()
    stamp = utcnow_iso()
    server = ServerRecord(
        id=new_id(), project_id=state.project_id, user_id=state.user_id,
        name=spec.name if count == 1 else f"{spec.name}-{index + 1}",
        flavor=spec.flavor, image_id=spec.image_id, availability_zone=zone,
        host=f"{zone}-compute-{random.randint(1, 3)}", created=stamp,
        updated=stamp, ready_at=state.clock() + state.settings.build_time,
        reservation_id=reservation_id, metadata=dict(spec.metadata),
        key_name=spec.key_name, user_data=spec.user_data,
        config_drive=spec.config_drive,
        access_ipv4=spec.access_ipv4 or state.settings.server_ip or "")
    if failure is not None and failure.kind == "error":
        server.outcome = "ERROR"
        server.fault = _fault(failure.code or 500,
                              failure.message or NO_VALID_HOST)
    for net_id, port_id in spec.nics:
        if port_id is None:
            port = state.create_port(net_id, device_id=server.id,
                                     device_owner=f"compute:{zone}")
        else:
            port = state.ports[port_id]
            port.update(device_id=server.id, device_owner=f"compute:{zone}")
        server.port_ids.append(port["id"])
    _attach_volumes(state, server, spec)
    state.servers[server.id] = server
    return server


def _scripted_refusal(state: CloudState, failure: CreateFailure) -> ApiError:
    if failure.kind == "http":
        return ApiError(failure.status, {"computeFault": {
            "code": failure.status, "message": failure.message or (
                "Unexpected API Error. Please report this at "
                "http://bugs.launchpad.net/nova/ and attach the Nova API log "
                "if possible.")}})
    used = state.compute_usage()["instances"]
    return ApiError(403, {"forbidden": {"code": failure.code or 403,
                                        "message": failure.message or (
        f"Quota exceeded for instances: Requested 1, but already used "
        f"{used} of {used} instances")}})


def create_handler(state: CloudState):
    def handler(req: Request) -> Response:
        mv = microversion(req)
        body = req.json().get("server")
        if state.settings.create_latency:
            time.sleep(state.settings.create_latency)
        with state.lock:
            state.tick()
            failure = state.failures.popleft() if state.failures else None
            if failure is not None and failure.kind in ("http", "quota"):
                raise _scripted_refusal(state, failure)
            if not isinstance(body, dict):
                raise bad_request("Invalid input for field/attribute server.")
            spec = _parse(state, body, mv)
            count = _allowed_count(state, spec)
            reservation_id = "r-" + secrets.token_hex(4)
            servers = [_build(state, spec, i, count, reservation_id, failure)
                       for i in range(count)]
            state.tick()
        headers = mv_headers(req)
        if spec.return_reservation_id:
            return Response(202, {"reservation_id": reservation_id},
                            headers=headers)
        first = servers[0]
        href = f"{state.base_url}{COMPUTE}/servers/{first.id}"
        headers["Location"] = href
        return Response(202, {"server": {
            "id": first.id, "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
            "adminPass": secrets.token_urlsafe(9),
            "links": [{"rel": "self", "href": href},
                      {"rel": "bookmark",
                       "href": href.replace("/v2.1", "")}]}}, headers=headers)
    return handler
