"""Which image a label boots: the ``imageReference`` of its VM.

Sources (config.md §6), exactly one per cloud image:

- ``image-reference`` {publisher, offer, sku, version}: a marketplace
  image, passed through;
- ``image-id``: a managed image or gallery image version resource id;
- ``image-filter`` {name, location, tags}: the managed images of the
  provider's resource group whose name and location equal the given ones
  and whose tags include the given ones; of several, the last in name
  order wins (names usually carry a date or build number);
- ``shared-gallery-image`` / ``community-gallery-image`` {gallery-name,
  name, version}: ``/SharedGalleries/<g>/Images/<n>/Versions/<v>`` (or
  ``CommunityGalleries``); without ``version`` Azure picks ``latest``;
- a label's ``diskimage``: the upload's image id (``image_external_id``),
  a resource id, or a bare name meaning an image in the resource group.

Only image-filter needs a call to build the reference; gallery images are
checked (their versions listed) by ``available``, so pool workers decline
requests for an image that does not exist.  Answers are cached ``ttl``
seconds (5 min) in the driver's one TTL cache (``nodepool.driver.ttlcache``).

Failure story: no match is ``ConfigurationError`` from ``resolve`` and
False from ``available``.  A failed lookup keeps the previous answer if
there is one (the cache's rule: asked again after its retry delay); with
none, ``available`` says True (the launch will find out) and ``resolve``
raises the classified error, which the create machine retries when it is
transient.

Threads: any (the cache locks; lookups run on the asking thread).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from nodepool.driver import errors
from nodepool.driver.backoff import log_failure
from nodepool.driver.ttlcache import TtlCache

__all__ = ["ImageResolver", "image_source", "pick_filtered",
           "gallery_image_id"]

log = logging.getLogger(__name__)

SOURCES = ("image-reference", "image-id", "image-filter",
           "shared-gallery-image", "community-gallery-image")


def image_source(label, image_external_id: str | None = None
                 ) -> tuple[str, Any] | None:
    """(source key, its config value) of a label; None when it has none."""
    if label.diskimage:
        return ("diskimage", image_external_id) if image_external_id \
            else None
    image = label.image
    if image is None:
        return None
    settings = image.settings or {}
    for key in SOURCES:
        if settings.get(key):
            return key, settings[key]
    return None


def gallery_image_id(kind: str, value: Mapping[str, str]) -> str:
    prefix = "SharedGalleries" if kind == "shared-gallery-image" \
        else "CommunityGalleries"
    version = value.get("version") or "latest"
    return (f"/{prefix}/{value['gallery-name']}/Images/{value['name']}"
            f"/Versions/{version}")


def _norm_location(value: str | None) -> str:
    return (value or "").replace(" ", "").lower()


def pick_filtered(images: list[Mapping], flt: Mapping[str, Any]
                  ) -> Mapping | None:
    """The image an ``image-filter`` selects (see module docstring)."""
    name = flt.get("name")
    location = _norm_location(flt.get("location")) if flt.get("location") \
        else None
    want = {str(k): str(v) for k, v in (flt.get("tags") or {}).items()}
    matches = []
    for image in images:
        if name is not None and image.get("name") != name:
            continue
        if location is not None and \
                _norm_location(image.get("location")) != location:
            continue
        have = image.get("tags") or {}
        if any(have.get(k) != v for k, v in want.items()):
            continue
        if (image.get("properties") or {}).get(
                "provisioningState", "Succeeded") != "Succeeded":
            continue
        matches.append(image)
    return max(matches, key=lambda i: i.get("name", "")) if matches \
        else None


#: the cache key of the resource group's managed images
IMAGES = ("images",)


class ImageResolver:
    """Builds image references from the adapter's calls ``images()``
    (managed images of the resource group),
    ``gallery_versions(kind, gallery, name)`` (version records) and
    ``image_id(value)`` (a diskimage upload's resource id)."""

    def __init__(self, images: Callable[[], list[dict]],
                 gallery_versions: Callable[[str, str, str], list[dict]],
                 image_id: Callable[[str], str], ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._images = images
        self._gallery_versions = gallery_versions
        self._image_id = image_id
        self.ttl = ttl
        # ("images",) or (kind, gallery, image name) -> records
        self._cache: TtlCache[tuple, list[dict]] = TtlCache(
            "images", self._fetch, ttl, clock=clock)

    def resolve(self, label, image_external_id: str | None = None) -> dict:
        """The ``imageReference`` to boot; ConfigurationError if none."""
        source = image_source(label, image_external_id)
        if source is None:
            raise errors.ConfigurationError(
                f"label {label.name} has no usable image",
                stat_key="error.config")
        kind, value = source
        if kind == "image-reference":
            return {k: value[k] for k in ("publisher", "offer", "sku",
                                           "version")}
        if kind == "image-id":
            return {"id": value}
        if kind == "diskimage":
            return {"id": self._image_id(value)}
        if kind == "image-filter":
            found = pick_filtered(self._cache.get(IMAGES),
                                  value)
            if found is None:
                raise errors.ConfigurationError(
                    f"no image matches the image-filter of label "
                    f"{label.name}: {dict(value)}", stat_key="error.config")
            return {"id": found["id"]}
        key = "sharedGalleryImageId" if kind == "shared-gallery-image" \
            else "communityGalleryImageId"
        return {key: gallery_image_id(kind, value)}

    def available(self, label, image_external_id: str | None = None
                  ) -> bool:
        source = image_source(label, image_external_id)
        if source is None:
            return False
        kind, value = source
        try:
            if kind == "image-filter":
                return pick_filtered(self._cache.get(IMAGES),
                                     value) is not None
            if kind in ("shared-gallery-image", "community-gallery-image"):
                return self._gallery_has(kind, value)
        except errors.DriverError as e:
            log_failure(log, e, "Could not check the image of label %s: %s",
                        label.name, e)
        return True

    def _gallery_has(self, kind: str, value: Mapping[str, str]) -> bool:
        gallery, name = value["gallery-name"], value["name"]
        versions = self._cache.get((kind, gallery, name))
        wanted = value.get("version")
        if wanted:
            return any(v.get("name") == wanted for v in versions)
        return any(not (v.get("properties") or {}).get("excludeFromLatest")
                   for v in versions)

    def _fetch(self, key: tuple) -> list[dict]:
        if key == IMAGES:
            return self._images()
        try:
            return self._gallery_versions(*key)
        except errors.NotFoundError:
            return []             # an unknown gallery image has no versions
