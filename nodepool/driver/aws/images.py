"""Which AMI a label launches, and whether it exists (cached).

A cloud image names its AMI by ``image-id`` or by ``image-filters`` (the
newest matching image by CreationDate wins, as upstream); a diskimage
label launches the AMI of its latest upload (``LaunchSpec
.image_external_id``).  The DescribeImages record is kept because the
root volume settings need its ``RootDeviceName`` and block mappings.

Cache: answers (found or not) are kept ``ttl`` seconds (5 min), so pool
workers can ask ``image_available`` on every request and creates resolve
their image without a call.  Filters can match a newer AMI later; it is
picked up at the next refresh.

Failure story: "no such image" is ``ConfigurationError`` from ``resolve``
and False from ``available``.  A transient failure keeps the previous
answer if there is one; with none, ``available`` says True (let the launch
find out) and ``resolve`` raises the transient error so the create is
retried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.backoff import log_failure

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
        self._clock = clock
        self._lock = threading.Lock()
        # reference key -> (time, record or None)
        self._cache: dict[str, tuple[float, dict | None]] = {}

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
        key = json.dumps(ref, sort_keys=True)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            record = self._fetch(ref)
        except errors.RETRYABLE:
            if cached is not None:
                return cached[1]
            raise
        with self._lock:
            self._cache[key] = (now, record)
        return record

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
