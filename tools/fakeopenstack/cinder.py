"""Cinder v3 of the local OpenStack: discovery, limits, volumes.

Enough block storage for the launcher's quota view (``GET limits``) and for
boot-from-volume, where Nova creates and attaches the volumes itself (see
:mod:`tools.fakeopenstack.create`).  Direct creates beyond the quota get
Cinder's 413 ``overLimit``; deleting an attached volume gets 400, as in
Cinder, so a cleanup that forgets to delete the server first fails loudly.
"""

from __future__ import annotations

import copy
from typing import Any

from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState

__all__ = ["register"]

VOLUME = "/volume/v3/{project_id}"
MAX_MICROVERSION = "3.70"


def _version(base: str) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": MAX_MICROVERSION,
            "min_version": "3.0", "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/volume/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;"
                                     "version=3"}]}


def _headers(req: Request) -> dict[str, str]:
    raw = req.header("OpenStack-API-Version")
    version = raw.split()[-1] if raw.lower().startswith("volume") else "3.0"
    if version == "latest":
        version = MAX_MICROVERSION
    return {"OpenStack-API-Version": f"volume {version}",
            "Vary": "OpenStack-API-Version"}


def _not_found(volume_id: str) -> ApiError:
    return ApiError(404, {"itemNotFound": {
        "code": 404, "message": f"Volume {volume_id} could not be found."}})


def _limits(state: CloudState) -> dict[str, Any]:
    count, gigabytes = state.volume_usage()
    s = state.settings
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": s.max_volumes,
        "maxTotalVolumeGigabytes": s.max_volume_gb,
        "maxTotalSnapshots": 10, "maxTotalBackups": 10,
        "maxTotalBackupGigabytes": 1000,
        "totalVolumesUsed": count, "totalGigabytesUsed": gigabytes,
        "totalSnapshotsUsed": 0, "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0}}}


def _check_quota(state: CloudState, size: int) -> None:
    count, gigabytes = state.volume_usage()
    s = state.settings
    if 0 <= s.max_volumes <= count:
        message = (f"VolumeLimitExceeded: Maximum number of volumes allowed "
                   f"({s.max_volumes}) exceeded for quota 'volumes'.")
    elif 0 <= s.max_volume_gb < gigabytes + size:
        message = (f"VolumeSizeExceedsAvailableQuota: Requested volume or "
                   f"snapshot exceeds allowed gigabytes quota. Requested "
                   f"{size}G, quota is {s.max_volume_gb}G and {gigabytes}G "
                   "has been consumed.")
    else:
        return
    raise ApiError(413, {"overLimit": {"code": 413, "message": message,
                                       "retryAfter": "0"}})


def register(router: Router, state: CloudState) -> None:
    def versions(req: Request) -> Response:
        return Response(300, {"versions": [_version(state.base_url)]})

    def limits(req: Request) -> Response:
        with state.lock:
            state.tick()
            return Response(200, _limits(state), headers=_headers(req))

    def listing(detail: bool):
        def handler(req: Request) -> Response:
            with state.lock:
                state.tick()
                found = [copy.deepcopy(v) for v in state.volumes.values()
                         if all(str(v.get(k)) == req.arg(k)
                                for k in ("name", "status")
                                if req.arg(k) is not None)]
            if not detail:
                found = [{"id": v["id"], "name": v["name"], "links": []}
                         for v in found]
            return Response(200, {"volumes": found}, headers=_headers(req))
        return handler

    def create(req: Request) -> Response:
        spec = req.json().get("volume") or {}
        try:
            size = int(spec.get("size") or 0)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            raise ApiError(400, {"badRequest": {
                "code": 400, "message": "Invalid input received: size must "
                                        "be an integer greater than 0"}})
        with state.lock:
            _check_quota(state, size)
            image_id = spec.get("imageRef")
            volume = state.create_volume(size, name=spec.get("name") or "",
                                         image_id=image_id)
            return Response(202, {"volume": copy.deepcopy(volume)},
                            headers=_headers(req))

    def show(req: Request) -> Response:
        with state.lock:
            state.tick()
            volume = state.volumes.get(req.params["volume_id"])
            if volume is None:
                raise _not_found(req.params["volume_id"])
            return Response(200, {"volume": copy.deepcopy(volume)},
                            headers=_headers(req))

    def delete(req: Request) -> Response:
        with state.lock:
            state.tick()
            volume = state.volumes.get(req.params["volume_id"])
            if volume is None:
                raise _not_found(req.params["volume_id"])
            if volume["attachments"]:
                raise ApiError(400, {"badRequest": {
                    "code": 400, "message": "Invalid volume: Volume status "
                    "must be available or error or error_restoring or "
                    "error_extending or error_managing and must not be "
                    "migrating, attached, belong to a group, have snapshots "
                    "or be disassociated from snapshots after volume "
                    "transfer."}})
            del state.volumes[volume["id"]]
        return Response(202, headers=_headers(req))

    router.add("GET", "/volume", versions)
    router.add("GET", "/volume/v3", versions)
    router.add("GET", VOLUME, versions)
    router.add("GET", f"{VOLUME}/limits", limits)
    router.add("GET", f"{VOLUME}/volumes", listing(False))
    router.add("GET", f"{VOLUME}/volumes/detail", listing(True))
    router.add("POST", f"{VOLUME}/volumes", create)
    router.add("GET", f"{VOLUME}/volumes/{{volume_id}}", show)
    router.add("DELETE", f"{VOLUME}/volumes/{{volume_id}}", delete)
