"""Reading builder-owned image upload records (zookeeper.md §10) and erasing
a provider's records (``nodepool erase``).

The launcher never writes these records; the one exception is
:meth:`ImageStore.erase_provider_uploads`, an operator action.  Non-record
children (builders' ``lock`` directories, empty znodes) are skipped.
"""

from __future__ import annotations

from typing import Iterator

from .image import ImageUpload, ImageUploadState
from .paths import IMAGES
from .record import decode_payload
from .errors import BadZnode
from .store import StoreBase

__all__ = ["ImageStore"]


def _is_record_name(name: str) -> bool:
    # Builders keep "lock" directories beside the records.
    return name != "lock" and not name.startswith(".")


class ImageStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for images."""

    def _provider_dirs(self, cached: bool, provider: str | None = None,
                       image: str | None = None
                       ) -> Iterator[tuple[str, str, str, str]]:
        """(image, build id, provider, path) for every provider directory."""
        images = [image] if image else self._children(IMAGES, cached)
        for image_name in images:
            builds_dir = f"{IMAGES}/{image_name}/builds"
            for build_id in filter(_is_record_name,
                                   self._children(builds_dir, cached)):
                providers_dir = f"{builds_dir}/{build_id}/providers"
                for name in self._children(providers_dir, cached):
                    if provider is None or name == provider:
                        yield (image_name, build_id, name,
                               f"{providers_dir}/{name}")

    def iter_image_uploads(self, provider: str | None = None,
                           image: str | None = None,
                           cached: bool = False) -> Iterator[ImageUpload]:
        for image_name, build_id, prov, path in self._provider_dirs(
                cached, provider, image):
            uploads_dir = f"{path}/images"
            for upload_id in filter(_is_record_name,
                                    self._children(uploads_dir, cached)):
                upload_path = f"{uploads_dir}/{upload_id}"
                raw = self._read_raw(upload_path, cached)
                if raw is None:
                    continue
                try:
                    payload = decode_payload(raw[0])
                except BadZnode as exc:
                    self._report_once(upload_path, raw[1], str(exc))
                    continue
                if payload is None:
                    continue
                yield ImageUpload.from_dict(image_name, build_id, prov,
                                            upload_id, payload)

    def known_upload_keys(self) -> dict[str, set[str]]:
        """Provider → ``"<build id>-<upload id>"`` of each of its upload
        records, whatever their state or payload, in one walk (leak
        cleanup: an upload whose record exists, even one that cannot be
        parsed, is never treated as leaked)."""
        keys: dict[str, set[str]] = {}
        for _, build_id, provider, path in list(self._provider_dirs(False)):
            for upload_id in filter(_is_record_name,
                                    self._children(f"{path}/images", False)):
                keys.setdefault(provider, set()).add(
                    f"{build_id}-{upload_id}")
        return keys

    def latest_ready_upload(self, image: str, provider: str,
                            cached: bool = False) -> ImageUpload | None:
        """The most recent READY upload of ``image`` to ``provider``."""
        ready = [u for u in self.iter_image_uploads(provider, image, cached)
                 if u.state == ImageUploadState.READY]
        if not ready:
            return None
        return max(ready, key=lambda u: (u.state_time or 0, u.build_id,
                                         u.id))

    def erase_provider_uploads(self, provider: str) -> int:
        """Remove every upload record of ``provider`` (no locking)."""
        count = 0
        for _, _, _, path in list(self._provider_dirs(False, provider)):
            self._delete_tree(path)
            count += 1
        return count
