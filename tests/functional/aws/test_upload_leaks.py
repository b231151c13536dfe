"""Leaked image uploads (AMIs, snapshots, S3 objects) and import-task tags.

The driver side of upstream's launcher leak cleanup, against the local AWS:
``list_resources`` returns our provider's uploads with their tags,
``delete_resource`` deletes each kind, and the rule (``leakrule.py``, as
upstream's launcher applies it) deletes exactly the uploads ZooKeeper does
not know, on the second pass.
"""

from __future__ import annotations

import pytest

from nodepool.driver.instance import Resource
from tests.functional.aws.helpers import adapter_of, tags
from tests.functional.leakrule import (
    UpstreamLeakRule, upload_tags, write_upload)
from tests.functional.launcher.helpers import wait_for

BUCKET = "nodepool-uploads"


def _tag_list(tag_map: dict) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tag_map.items()]


def _snapshot(aws, tag_map: dict | None = None,
              description: str = "") -> str:
    ec2 = aws.ec2()
    volume = ec2.create_volume(Size=1,
                               AvailabilityZone=aws.boot["availability_zone"])
    kw = {"TagSpecifications": [{"ResourceType": "snapshot",
                                 "Tags": _tag_list(tag_map)}]} \
        if tag_map else {}
    snap = ec2.create_snapshot(VolumeId=volume["VolumeId"],
                               Description=description, **kw)
    ec2.delete_volume(VolumeId=volume["VolumeId"])
    return snap["SnapshotId"]


def _ami(aws, name: str, tag_map: dict | None = None,
         snapshot_id: str | None = None) -> str:
    ec2 = aws.ec2()
    snapshot_id = snapshot_id or _snapshot(aws)
    image = ec2.register_image(
        Name=name, RootDeviceName="/dev/sda1", Architecture="x86_64",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                              "Ebs": {"SnapshotId": snapshot_id}}])
    if tag_map:
        ec2.create_tags(Resources=[image["ImageId"]],
                        Tags=_tag_list(tag_map))
    return image["ImageId"]


def _ami_tags(aws, ami: str) -> dict | None:
    images = aws.ec2().describe_images(ImageIds=[ami])["Images"] \
        if _ami_exists(aws, ami) else []
    return tags(images[0]) if images else None


def _ami_exists(aws, ami: str) -> bool:
    return any(i["ImageId"] == ami for i in aws.ec2().describe_images(
        Owners=["self"])["Images"])


def _snapshot_tags(aws, snapshot_id: str) -> dict | None:
    snaps = aws.ec2().describe_snapshots(Filters=[
        {"Name": "snapshot-id", "Values": [snapshot_id]}])["Snapshots"]
    return tags(snaps[0]) if snaps else None


def _object(aws, key: str, tag_map: dict | None) -> None:
    from urllib.parse import urlencode
    kw = {"Tagging": urlencode(tag_map)} if tag_map else {}
    aws.local.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"x",
                                      **kw)


def _objects(aws) -> set[str]:
    answer = aws.local.client("s3").list_objects_v2(Bucket=BUCKET)
    return {o["Key"] for o in answer.get("Contents") or []}


def _provider(aws, **extra):
    return aws.provider(**{"object-storage": {"bucket-name": BUCKET},
                           **extra})


@pytest.fixture
def bucket(aws):
    aws.local.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def _by_id(resources) -> dict[str, Resource]:
    return {r.id: r for r in resources}


def test_uploads_listed_with_tags_and_unknown_ones_deleted(env, aws, bucket):
    env.write_config([_provider(aws)])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    # Known uploads: one ready, one still uploading (its snapshot is being
    # made right now and must survive).
    write_upload(env.client, "ubuntu", "0000000001", "aws", "0000000001")
    write_upload(env.client, "ubuntu", "0000000002", "aws", "0000000003",
                 state="uploading")
    known = upload_tags("aws", "0000000001", "0000000001")
    uploading = upload_tags("aws", "0000000002", "0000000003")
    unknown = upload_tags("aws", "0000000009", "0000000009")
    foreign = upload_tags("other", "0000000009", "0000000009")
    provider_only = {"nodepool_provider_name": "aws"}

    leaked_snap = _snapshot(aws, unknown)
    leaked_ami = _ami(aws, "leaked", unknown, leaked_snap)
    _object(aws, "leaked.raw", unknown)
    known_snap = _snapshot(aws, known)
    known_ami = _ami(aws, "known", known, known_snap)
    _object(aws, "known.raw", known)
    uploading_snap = _snapshot(aws, uploading)
    _object(aws, "uploading.raw", uploading)
    plain_ami = _ami(aws, "plain", provider_only)
    plain_snap = _snapshot(aws, provider_only)
    foreign_ami = _ami(aws, "foreign", foreign)
    foreign_snap = _snapshot(aws, foreign)
    _object(aws, "foreign.raw", foreign)
    _object(aws, "untagged.raw", None)

    listed = _by_id(adapter.list_resources())
    expected = {leaked_ami: "amis", known_ami: "amis", plain_ami: "amis",
                leaked_snap: "snapshots", known_snap: "snapshots",
                uploading_snap: "snapshots", plain_snap: "snapshots",
                "leaked.raw": "objects", "known.raw": "objects",
                "uploading.raw": "objects"}
    assert {i: listed[i].type for i in expected if i in listed} == expected
    # Only what carries our provider tag is listed.
    for other in (foreign_ami, foreign_snap, "foreign.raw", "untagged.raw"):
        assert other not in listed
    assert dict(listed[leaked_ami].metadata) == unknown
    assert dict(listed["uploading.raw"].metadata) == uploading
    assert listed[known_snap].upload_key == "0000000001-0000000001"
    assert listed[plain_ami].upload_key is None
    uploads = [r for r in listed.values() if r.type in
               ("amis", "snapshots", "objects")]
    # An AMI goes before its snapshot.
    kinds = [r.type for r in uploads]
    assert kinds == sorted(kinds, key=["amis", "snapshots",
                                       "objects"].index)

    rule = UpstreamLeakRule(adapter, "aws", launcher.zk)
    assert rule.run_pass() == []            # first pass: suspects only
    assert _ami_exists(aws, leaked_ami) and "leaked.raw" in _objects(aws)
    deleted = rule.run_pass()
    assert sorted(r.id for r in deleted) == sorted(
        [leaked_ami, leaked_snap, "leaked.raw"])
    assert not _ami_exists(aws, leaked_ami)
    assert _snapshot_tags(aws, leaked_snap) is None
    assert _objects(aws) == {"known.raw", "uploading.raw", "foreign.raw",
                             "untagged.raw"}
    for ami in (known_ami, plain_ami, foreign_ami):
        assert _ami_exists(aws, ami), ami
    for snap in (known_snap, uploading_snap, plain_snap, foreign_snap):
        assert _snapshot_tags(aws, snap) is not None, snap
    # The upload in progress survives any number of passes.
    rule.run_pass()
    assert _snapshot_tags(aws, uploading_snap) == uploading

    # Deleting what is already gone counts as done, for every kind.
    for resource in deleted:
        adapter.delete_resource(resource)


def test_delete_refuses_what_is_not_ours(env, aws, bucket):
    env.write_config([_provider(aws)])
    launcher = env.start_launcher()
    ami = _ami(aws, "foreign", upload_tags("other", "1", "1"))
    resource = Resource(type="amis", id=ami,
                        metadata=upload_tags("other", "1", "1"))
    with pytest.raises(Exception, match="not tagged with provider aws"):
        adapter_of(launcher).delete_resource(resource)
    assert _ami_exists(aws, ami)


def test_no_object_storage_lists_no_objects(env, aws, bucket):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    _object(aws, "leaked.raw", upload_tags("aws", "9", "9"))

    def s3_calls() -> int:
        return sum(n for key, n in aws.local.stats()["calls"].items()
                   if key.startswith("s3:"))
    before = s3_calls()
    listed = adapter_of(launcher).list_resources()
    assert [r for r in listed if r.type == "objects"] == []
    assert s3_calls() == before


def _root_snapshot(aws, ami: str) -> str:
    [image] = aws.ec2().describe_images(ImageIds=[ami])["Images"]
    return image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]


def test_import_task_tags_are_copied_onto_their_results(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    ours = upload_tags("aws", "0000000004", "0000000005")
    other = upload_tags("other", "0000000004", "0000000005")
    # ImportSnapshot: the snapshot is untagged, the task has the tags.
    imported_snap = _snapshot(aws)
    aws.local.add_import_task("snapshot", ours, snapshot_id=imported_snap)
    # An AMI registered from a snapshot import (moto gives it a snapshot
    # of its own: the import task names that one) before the builder
    # could tag it.
    registered = _ami(aws, "registered")
    registered_snap = _root_snapshot(aws, registered)
    aws.local.add_import_task("snapshot", ours, snapshot_id=registered_snap)
    # ImportImage: AMI named after the task, its snapshot in the task.
    task_id = "import-ami-0123456789abcdef0"
    image_ami = _ami(aws, task_id)
    image_snap = _root_snapshot(aws, image_ami)
    aws.local.add_import_task("image", ours, id=task_id, image_id=image_ami,
                              snapshot_id=image_snap)
    # Another provider's import, and untagged snapshots of nobody's.
    foreign_snap = _snapshot(aws)
    aws.local.add_import_task("snapshot", other, snapshot_id=foreign_snap)
    foreign_ami = _ami(aws, "import-ami-0eeeeeeeeeeeeeee0")
    aws.local.add_import_task("image", other, id="import-ami-0eeeeeeeeeeeeeee0",
                              image_id=foreign_ami)
    stray_snap = _snapshot(aws)
    # An AMI named like an import whose task EC2 no longer knows.
    stray_ami = _ami(aws, "import-ami-0fffffffffffffff0")
    # Tagged results keep their own tags.
    tagged_snap = _snapshot(aws, {"nodepool_provider_name": "aws"})
    aws.local.add_import_task("snapshot", ours, snapshot_id=tagged_snap)

    listed = _by_id(adapter.list_resources())
    for rid in (imported_snap, registered, registered_snap, image_ami,
                image_snap):
        assert listed[rid].metadata == ours, rid
    for snap in (imported_snap, registered_snap, image_snap):
        assert _snapshot_tags(aws, snap) == ours, snap
    for ami in (registered, image_ami):
        assert _ami_tags(aws, ami) == ours, ami
    assert _snapshot_tags(aws, tagged_snap) == {
        "nodepool_provider_name": "aws"}
    for snap in (foreign_snap, stray_snap):
        assert _snapshot_tags(aws, snap) == {}, snap
    for ami in (foreign_ami, stray_ami):
        assert _ami_tags(aws, ami) == {}, ami
        assert ami not in listed
    assert foreign_snap not in listed and stray_snap not in listed

    # Nothing is tagged twice, nor looked up again: one listing each.
    before = dict(aws.local.stats()["calls"])
    adapter.list_resources()
    after = aws.local.stats()["calls"]
    delta = {a: after.get(a, 0) - before.get(a, 0) for a in (
        "CreateTags", "DescribeSnapshots", "DescribeImages",
        "DescribeImportSnapshotTasks", "DescribeImportImageTasks")}
    assert delta == {"CreateTags": 0, "DescribeSnapshots": 1,
                     "DescribeImages": 1, "DescribeImportSnapshotTasks": 1,
                     "DescribeImportImageTasks": 1}


def test_import_task_listing_failure_still_lists(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    snap = _snapshot(aws)
    aws.local.add_import_task("snapshot", upload_tags("aws", "1", "2"),
                              snapshot_id=snap)
    aws.local.inject_fault("UnauthorizedOperation",
                           action="DescribeImportSnapshotTasks", count=1)
    leaked = _snapshot(aws, upload_tags("aws", "9", "9"))
    assert leaked in _by_id(adapter.list_resources())
    assert _snapshot_tags(aws, snap) == {}
    # The next pass copies the tags: nothing was given up on.
    assert _by_id(adapter.list_resources())[snap].metadata == \
        upload_tags("aws", "1", "2")


def test_launcher_cleanup_keeps_known_uploads(env, aws, bucket):
    env.write_config([_provider(aws)])
    launcher = env.start_launcher()
    write_upload(env.client, "ubuntu", "0000000002", "aws", "0000000003",
                 state="uploading")
    uploading_snap = _snapshot(aws, upload_tags("aws", "0000000002",
                                                "0000000003"))
    plain_snap = _snapshot(aws, {"nodepool_provider_name": "aws"})
    leaked_ami = _ami(aws, "leaked", upload_tags("aws", "9", "9"))
    cleanup = launcher.cleanup_worker
    adapter_of(launcher).forget_listing()
    cleanup.run_once()
    assert _ami_exists(aws, leaked_ami)
    cleanup.run_once()
    wait_for(lambda: not _ami_exists(aws, leaked_ami), what="leaked AMI")
    assert _snapshot_tags(aws, uploading_snap) is not None
    assert _snapshot_tags(aws, plain_snap) is not None
