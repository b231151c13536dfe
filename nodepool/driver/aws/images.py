"""Which AMI a label launches, and whether it exists (cached).

A cloud image names its AMI by ``image-id`` or by ``image-filters`` (the
newest matching image by CreationDate wins, as upstream); a diskimage
label launches the AMI of its latest upload (``LaunchSpec
.image_external_id``).  The DescribeImages record is kept because the
root volume settings need its ``RootDeviceName`` and block mappings.

Cache: answers (found or not) are kept ``ttl`` seconds (5 min) in the
driver's one TTL cache (``nodepool.driver.ttlcache``), so pool workers can
ask ``image_available`` on every request and creates resolve their image
without a call.  Filters can match a newer AMI later; it is picked up at
the next refresh.

Failure story: "no such image" is ``ConfigurationError`` from ``resolve``
and False from ``available``.  A failed DescribeImages keeps the previous
answer if there is one (the cache's rule: asked again after its retry
delay); with none, ``available`` says True (let the launch find out) and
``resolve`` raises the error so the create is retried.

Threads: any (the cache locks; the fetch runs on the asking thread).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.backoff import log_failure
from nodepool.driver.ttlcache import TtlCache

__all__ = ["ImageResolver", "image_reference"]

log = logging.getLogger(__name__)


def _filters(raw: list[dict]) -> list[dict]:
    return [{"Name": f.get("name", f.get("Name")),
             "Values": [str(v) for v in f.get("values", f.get("Values"))
                        or []]}
            for f in raw]


def image_reference(label, image_external_id: str | None = None
                    ) -> tuple[str, Any] | None:
    """("id", ami) or ("filters", [...]) for a label; None if it has none."""
    if label.diskimage:
        return ("id", image_external_id) if image_external_id else None
    image = label.image
    if image is None:
        return None
    settings = image.settings or {}
    if settings.get("image-id"):
        return ("id", settings["image-id"])
    if settings.get("image-filters"):
        return ("filters", _filters(settings["image-filters"]))
    return None


class ImageResolver:
    """``describe_images(**params)`` returns DescribeImages records."""

    def __init__(self, describe_images: Callable[..., list[dict]],
                 ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._describe = describe_images
        # reference key (JSON) -> record or None
        self._cache: TtlCache[str, dict | None] = TtlCache(
            "images", lambda key: self._fetch(tuple(json.loads(key))), ttl,
            clock=clock)

    def resolve(self, label, image_external_id: str | None = None) -> dict:
        """The AMI record to launch; ConfigurationError if there is none."""
        ref = image_reference(label, image_external_id)
        if ref is None:
            raise errors.ConfigurationError(
                f"label {label.name} has no usable image",
                stat_key="error.config")
        if label.diskimage and not str(ref[1]).startswith("ami-"):
            # The launch names the upload by something other than its AMI
            # (e.g. its ZooKeeper path): nothing here can launch that.
            raise errors.ConfigurationError(
                f"diskimage label {label.name}: {ref[1]!r} is not an AMI id",
                stat_key="error.config")
        record = self._lookup(ref)
        if record is None:
            raise errors.ConfigurationError(
                f"image {ref[1]!r} of label {label.name} not found",
                stat_key="error.config")
        return record

    def available(self, label, image_external_id: str | None = None
                  ) -> bool:
        ref = image_reference(label, image_external_id)
        if ref is None:
            return False
        try:
            return self._lookup(ref) is not None
        except errors.DriverError as e:
            log_failure(log, e, "Could not check image of label %s: %s",
                        label.name, e)
            return True

    def _lookup(self, ref: tuple[str, Any]) -> dict | None:
        return self._cache.get(json.dumps(ref, sort_keys=True))

    def _fetch(self, ref: tuple[str, Any]) -> dict | None:
        kind, value = ref
        if kind == "id":
            # A filter, not ImageIds: an unknown id is then an empty
            # answer instead of an error.
            images = self._describe(
                Filters=[{"Name": "image-id", "Values": [value]}])
        else:
            images = self._describe(Filters=value)
        images = [i for i in images if i.get("State", "available")
                  == "available"]
        if not images:
            return None
        return max(images, key=lambda i: (i.get("CreationDate", ""),
                                          i["ImageId"]))
