"""Image uploads that may leak: AMIs, EBS snapshots and S3 objects.

A builder uploads a diskimage to a provider by putting the image file in
the provider's ``object-storage`` bucket and importing it (ImportSnapshot
then RegisterImage, or ImportImage), tagging what it makes with
``nodepool_provider_name``, ``nodepool_build_id`` and
``nodepool_upload_id``.  A builder that dies half way, or an upload record
erased by hand, leaves these behind; the launcher's leak cleanup finds
them here and deletes them when their ``<build id>-<upload id>`` is not
among the provider's upload records in ZooKeeper (the rule lives in the
launcher; this module only lists and deletes).

Listing (``list``), once per cleanup pass:

- the account's own AMIs (``Owners=self``; an account has few), its own
  snapshots tagged with our provider name (``OwnerIds=self`` and a tag
  filter: an account may have tens of thousands of snapshots, and upstream
  Nodepool's listing of all of them every pass is the one thing we do not
  copy; the result is the same), and every object of the bucket with its
  tags (one GetObjectTagging per object, as S3 has no listing of tags);
- only resources tagged with our provider name are returned, as
  ``Resource`` values of type ``amis``, ``snapshots`` and ``objects``
  (the ``leaked.<type>`` metric names), ``id`` the AMI id, snapshot id or
  object key, ``metadata`` the resource's tags, AMIs before snapshots (an
  AMI's snapshot can only go once the AMI is deregistered).

Import tasks cannot tag their result: ImportSnapshot and ImportImage take
tags for the *task* only.  So before listing, the results of the import
tasks tagged with our provider name get the task's tags, as upstream
copies them, when they have no tags at all:

- snapshots: the ``SnapshotId`` of each snapshot import task and the
  snapshots (``SnapshotDetails``) of each image import task
  (DescribeImportSnapshotTasks / DescribeImportImageTasks, both listed
  each pass: EC2 keeps tasks for a week), looked up by id; one found
  already tagged, or tagged now, is never looked up again;
- AMIs: an untagged AMI named after an ``import-ami-*`` task gets that
  image task's tags; another untagged AMI those of the snapshot import
  task that made the snapshot of its first block device.  An untagged AMI
  no task of ours explains is remembered and never examined again.

Deleting (``delete``): DeregisterImage, DeleteSnapshot, DeleteObject; a
resource that is already gone counts as deleted.  Nothing is deleted
whose metadata does not carry our provider tag.

Failure story: every call goes through ``AwsApi`` (reads at the read rate,
tagging and deletes at ``rate``), so throttling and transient errors are
retried there.  A failed tag copy is logged and retried on the next pass
(until then the resource is not listed: it is not ours until tagged).  A failed listing raises the classified error
and ends that provider's leak pass; the next pass starts over.  An object
deleted between the listing and its tag read is skipped.

Threads: the launcher's cleanup worker calls ``list`` and ``delete``; the
caches (AMIs that are not ours, snapshots already settled) are guarded by
``_lock``.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Iterable, Mapping

from nodepool.driver import errors
from nodepool.driver.aws.errors import error_code
from nodepool.driver.backoff import log_failure
from nodepool.driver.instance import Resource

__all__ = ["UPLOAD_TYPES", "UploadResources", "import_task_id",
           "s3_client"]

log = logging.getLogger(__name__)

#: Resource types (``leaked.<type>`` metric names), in deletion order
UPLOAD_TYPES = ("amis", "snapshots", "objects")
PROVIDER_TAG = "nodepool_provider_name"
_IMAGE_TASK = re.compile(r"(import-ami-\w+)")
#: an AMI or snapshot that is already gone
_GONE_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable",
                         "InvalidSnapshot.NotFound", "NoSuchKey",
                         "NoSuchBucket"})


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def import_task_id(text: str | None) -> str | None:
    """The ``import-ami-*`` task named in an AMI name or description."""
    match = _IMAGE_TASK.search(text or "")
    return match.group(1) if match else None


def s3_client(session, region: str):
    """An S3 client configured as ``AwsApi``'s (one attempt per call: the
    retries are ``AwsApi``'s, which report throttling to the limiter)."""
    from botocore.config import Config
    config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=10, read_timeout=60)
    return session.client("s3", region_name=region, config=config)


def _cause_code(exc: BaseException) -> str | None:
    return error_code(exc.__cause__) if exc.__cause__ is not None else None


class UploadResources:
    """Lists and deletes one provider's uploads (see module docstring).

    ``api`` is the provider's ``AwsApi``; ``bucket`` the
    ``object-storage`` bucket name (None: no objects are listed);
    ``s3`` a boto3 S3 client, or a callable making one on first use.
    """

    def __init__(self, api, provider_name: str, bucket: str | None,
                 s3: Any = None):
        self.api = api
        self.provider_name = provider_name
        self.bucket = bucket
        self._s3 = s3
        self._lock = threading.Lock()
        self._not_ours_amis: set[str] = set()
        self._settled_snapshots: set[str] = set()
        self.tags_copied = 0

    # -- listing ---------------------------------------------------------------
    def list(self) -> list[Resource]:
        amis = self.api.read_pages("describe_images", "Images",
                                   Owners=["self"])
        try:
            self._tag_imports(amis)
        except errors.DriverError as e:
            log_failure(log, e, "Could not copy import task tags for "
                        "provider %s: %s", self.provider_name, e)
        snapshots = self.api.read_pages(
            "describe_snapshots", "Snapshots", OwnerIds=["self"],
            Filters=[{"Name": f"tag:{PROVIDER_TAG}",
                      "Values": [self.provider_name]}])
        out = [self._resource("amis", a["ImageId"], tag_dict(a.get("Tags")))
               for a in amis]
        out += [self._resource("snapshots", s["SnapshotId"],
                               tag_dict(s.get("Tags"))) for s in snapshots]
        if self.bucket:
            out += self._objects()
        return [r for r in out if r.provider_name == self.provider_name]

    @staticmethod
    def _resource(kind: str, rid: str, tags: dict[str, str],
                  driver_data: Any = None) -> Resource:
        return Resource(type=kind, id=rid, metadata=tags,
                        driver_data=driver_data)

    def _objects(self) -> list[Resource]:
        s3 = self.s3()
        out = []
        params: dict[str, Any] = {"Bucket": self.bucket}
        while True:
            try:
                page = self.api.call(self.api.read_limiter,
                                     s3.list_objects_v2, "ListObjectsV2",
                                     params)
            except errors.DriverError as e:
                if _cause_code(e) == "NoSuchBucket":
                    log.warning("object-storage bucket %s of provider %s "
                                "does not exist", self.bucket,
                                self.provider_name)
                    return out
                raise
            for item in page.get("Contents") or []:
                tags = self._object_tags(s3, item["Key"])
                if tags is not None:
                    out.append(self._resource("objects", item["Key"], tags,
                                              self.bucket))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out
            params = {"Bucket": self.bucket, "ContinuationToken": token}

    def _object_tags(self, s3, key: str) -> dict[str, str] | None:
        try:
            answer = self.api.call(self.api.read_limiter,
                                   s3.get_object_tagging, "GetObjectTagging",
                                   {"Bucket": self.bucket, "Key": key})
        except errors.DriverError as e:
            if _cause_code(e) in _GONE_CODES:
                return None           # deleted since the listing
            raise
        return tag_dict(answer.get("TagSet"))

    def s3(self):
        with self._lock:
            if callable(self._s3):
                self._s3 = self._s3()
            return self._s3

    # -- import task tags ------------------------------------------------------
    def _ours(self, tags: Mapping[str, str] | None) -> bool:
        return bool(tags) and tags.get(PROVIDER_TAG) == self.provider_name

    def _tag_imports(self, amis: list[dict]) -> None:
        by_snapshot: dict[str, dict[str, str]] = {}   # snapshot task results
        image_tags: dict[str, dict[str, str]] = {}    # image task id → tags
        results: dict[str, dict[str, str]] = {}       # any snapshot made
        for task in self.api.read_pages("describe_import_snapshot_tasks",
                                        "ImportSnapshotTasks"):
            tags = tag_dict(task.get("Tags"))
            snapshot_id = (task.get("SnapshotTaskDetail") or {}).get(
                "SnapshotId")
            if snapshot_id and self._ours(tags):
                by_snapshot[snapshot_id] = tags
                results[snapshot_id] = tags
        for task in self.api.read_pages("describe_import_image_tasks",
                                        "ImportImageTasks"):
            tags = tag_dict(task.get("Tags"))
            if not self._ours(tags):
                continue
            image_tags[task["ImportTaskId"]] = tags
            for detail in task.get("SnapshotDetails") or []:
                if detail.get("SnapshotId"):
                    results[detail["SnapshotId"]] = tags
        self._tag_snapshots(results)
        with self._lock:
            untagged = [a for a in amis if not a.get("Tags")
                        and a["ImageId"] not in self._not_ours_amis]
        for ami in untagged:
            name = ami.get("Name") or ""
            tags = image_tags.get(import_task_id(name) or "") \
                if name.startswith("import-ami-") else None
            tags = tags or by_snapshot.get(self._first_snapshot(ami) or "")
            if tags:
                self._copy(ami, ami["ImageId"], tags)
            else:
                with self._lock:
                    self._not_ours_amis.add(ami["ImageId"])

    def _tag_snapshots(self, results: dict[str, dict[str, str]]) -> None:
        with self._lock:
            pending = sorted(set(results) - self._settled_snapshots)
        for start in range(0, len(pending), 200):
            ids = pending[start:start + 200]
            found = self.api.read_pages(
                "describe_snapshots", "Snapshots",
                Filters=[{"Name": "snapshot-id", "Values": ids}])
            for snap in found:
                snapshot_id = snap["SnapshotId"]
                if not snap.get("Tags"):
                    self._copy(snap, snapshot_id, results[snapshot_id])
                with self._lock:
                    self._settled_snapshots.add(snapshot_id)

    @staticmethod
    def _first_snapshot(ami: Mapping) -> str | None:
        mappings = ami.get("BlockDeviceMappings") or []
        if not mappings:
            return None
        return (mappings[0].get("Ebs") or {}).get("SnapshotId")

    def _copy(self, record: dict, rid: str, tags: dict[str, str]) -> None:
        log.info("Copying the tags of its import task onto %s (provider %s)",
                 rid, self.provider_name)
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.api.mutate("create_tags", Resources=[rid], Tags=pairs)
        record["Tags"] = pairs       # the listing now shows them
        self.tags_copied += 1

    # -- deleting --------------------------------------------------------------
    def delete(self, resource: Resource) -> None:
        """Delete one listed upload; one already gone counts as deleted."""
        if resource.provider_name != self.provider_name:
            raise errors.ConfigurationError(
                f"refusing to delete {resource.type} {resource.id}: not "
                f"tagged with provider {self.provider_name}")
        try:
            if resource.type == "amis":
                self.api.mutate("deregister_image", ImageId=resource.id)
            elif resource.type == "snapshots":
                self.api.mutate("delete_snapshot", SnapshotId=resource.id)
            elif resource.type == "objects":
                self.api.call(self.api.limiter, self.s3().delete_object,
                              "DeleteObject",
                              {"Bucket": resource.driver_data or self.bucket,
                               "Key": resource.id})
            else:
                raise errors.ConfigurationError(
                    f"not an upload resource: {resource.type}")
        except errors.NotFoundError:
            pass
        except errors.DriverError as e:
            if _cause_code(e) not in _GONE_CODES:
                raise
