"""Glance v2 of the local OpenStack: discovery and read-only images.

The SDK resolves an image name by first GETting ``/v2/images/<name>`` (a
404 here, as in Glance, whose 404 body is plain text) and then listing with
``?name=<name>``.  Images are fixed at construction; uploads are out of
scope (the launcher only boots existing cloud images).
"""

from __future__ import annotations

from typing import Any

from tools.fakeopenstack.routing import ApiError, Request, Response, Router
from tools.fakeopenstack.state import CloudState

__all__ = ["register"]

IMAGE = "/image/v2"
_FILTERS = ("name", "status", "visibility", "owner", "disk_format",
            "container_format", "id")


def _versions(base: str) -> list[dict[str, Any]]:
    return [{"id": f"v2.{minor}", "status": "CURRENT" if minor == 16
             else "SUPPORTED",
             "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}
            for minor in range(16, -1, -1)]


def _matches(image: dict[str, Any], req: Request) -> bool:
    for key in _FILTERS:
        wanted = req.arg(key)
        if wanted is None:
            continue
        if wanted.startswith("in:"):
            if image[key] not in wanted[3:].split(","):
                return False
        elif str(image[key]) != wanted:
            return False
    return True


def register(router: Router, state: CloudState) -> None:
    def versions(req: Request) -> Response:
        return Response(300, {"versions": _versions(state.base_url)})

    def listing(req: Request) -> Response:
        found = [i for i in state.images if _matches(i, req)]
        marker = req.arg("marker")
        if marker:
            ids = [i["id"] for i in found]
            found = found[ids.index(marker) + 1:] if marker in ids else []
        try:
            limit = max(1, int(req.arg("limit") or 25))
        except ValueError:
            raise ApiError(400, "400 Bad Request\n\nlimit param must be an "
                           "integer", content_type="text/plain")
        page = found[:limit]
        body: dict[str, Any] = {"images": page, "first": "/v2/images",
                                "schema": "/v2/schemas/images"}
        if len(found) > limit:
            body["next"] = f"/v2/images?marker={page[-1]['id']}&limit={limit}"
        return Response(200, body)

    def show(req: Request) -> Response:
        image = state.find_image(req.params["image_id"])
        if image is None:
            raise ApiError(404, "404 Not Found\n\nNo image found with ID "
                           f"{req.params['image_id']}\n\n   ",
                           content_type="text/plain; charset=UTF-8")
        return Response(200, image)

    router.add("GET", "/image", versions)
    router.add("GET", "/image/versions", versions)
    router.add("GET", IMAGE, versions)
    router.add("GET", f"{IMAGE}/images", listing)
    router.add("GET", f"{IMAGE}/images/{{image_id}}", show)
