"""Image upload records, written by upstream builders and only read here
(zookeeper.md §10):

    /nodepool/images/<image>/builds/<build>/providers/<provider>/images/<id>

Builders keep lock directories (``lock``) and other bookkeeping next to the
records; only children that carry a JSON object are records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .paths import IMAGES

__all__ = ["ImageUploadState", "ImageUpload", "upload_path"]



class ImageUploadState:
    BUILDING = "building"
    UPLOADING = "uploading"
    READY = "ready"
    DELETING = "deleting"
    FAILED = "failed"


def upload_path(image: str, build_id: str, provider: str,
                upload_id: str | None = None) -> str:
    path = f"{IMAGES}/{image}/builds/{build_id}/providers/{provider}/images"
    return path if upload_id is None else f"{path}/{upload_id}"


@dataclass(eq=False, kw_only=True)
class ImageUpload:
    """One upload of one build of a diskimage to one provider."""

    image: str
    build_id: str
    provider: str
    id: str
    state: str | None = None
    state_time: float | None = None
    external_id: Any = None
    external_name: str | None = None
    format: str | None = None
    username: str | None = None
    python_path: str | None = None
    shell_type: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    _KEYS = ("state", "state_time", "external_id", "external_name", "format",
             "username", "python_path", "shell_type")

    @property
    def path(self) -> str:
        """The record's znode path; labels store it in ``node.image_id``."""
        return upload_path(self.image, self.build_id, self.provider, self.id)

    @classmethod
    def from_dict(cls, image: str, build_id: str, provider: str,
                  upload_id: str, data: dict) -> "ImageUpload":
        known = {k: data.get(k) for k in cls._KEYS}
        extra = {k: v for k, v in data.items() if k not in cls._KEYS}
        return cls(image=image, build_id=build_id, provider=provider,
                   id=upload_id, extra=extra, **known)

    def to_dict(self) -> dict:
        data = dict(self.extra)
        data.update({k: getattr(self, k) for k in self._KEYS})
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode("utf-8")
