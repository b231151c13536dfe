"""Leak cleanup follows upstream Nodepool 11's rule (parity item 4).

A cloud object tagged with our provider is a leak only when a tag names
something ZooKeeper does not know: ``nodepool_node_id`` no node of that
provider, ``nodepool_build_id``+``nodepool_upload_id`` no upload record of
that provider.  One that carries neither -- a builder's upload in progress,
an operator's volume -- is never deleted, however many passes see it.
"""

from __future__ import annotations

import json

from nodepool.zk.image import upload_path
from tests.functional.aws.helpers import adapter_of
from tests.functional.launcher.helpers import wait_for

OURS = {"nodepool_provider_name": "aws", "nodepool_pool_name": "main"}


def _pairs(tags: dict) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _run(ec2, boot, tags) -> str:
    answer = ec2.run_instances(
        ImageId=boot["image_id"], MinCount=1, MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": _pairs(tags)}])
    return answer["Instances"][0]["InstanceId"]


def _volume(ec2, boot, tags) -> str:
    return ec2.create_volume(
        Size=1, AvailabilityZone=boot["availability_zone"],
        TagSpecifications=[{"ResourceType": "volume",
                            "Tags": _pairs(tags)}])["VolumeId"]


def _volume_exists(ec2, volume_id) -> bool:
    return bool(ec2.describe_volumes(Filters=[
        {"Name": "volume-id", "Values": [volume_id]}])["Volumes"])


def _alive(aws, iid) -> bool:
    return bool(aws.instances(**{"instance-id": [iid]}))


def _seed_upload(kazoo, image, build, provider, state) -> str:
    """An upload record as a builder writes it (sequential id)."""
    base = upload_path(image, build, provider)
    kazoo.ensure_path(base + "/lock")
    path = kazoo.create(base + "/", json.dumps(
        {"state": state, "state_time": 1.0, "external_id": None,
         "external_name": f"{image}-{build}"}).encode(), sequence=True)
    return path.rsplit("/", 1)[1]


def _seed_node(kazoo, provider) -> str:
    path = kazoo.create("/nodepool/nodes/", json.dumps(
        {"state": "ready", "provider": provider, "type": ["small"]}).encode(),
        sequence=True, makepath=True)
    return path.rsplit("/", 1)[1]


def _passes(launcher, count: int) -> None:
    adapter = adapter_of(launcher)
    for _ in range(count):
        adapter.forget_listing()      # list_instances caches for 2 s
        launcher.cleanup_worker.run_once()


def test_objects_without_node_or_upload_tags_are_never_deleted(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    ec2, boot = aws.ec2(), aws.boot
    kazoo = env.client
    uploading = _seed_upload(kazoo, "ubuntu", "0000000007", "aws",
                             "uploading")
    # A builder's upload in progress: our provider tag, no node id; with
    # upload ids that ZooKeeper knows (state "uploading") or none at all.
    in_progress = _volume(ec2, boot, {
        **OURS, "nodepool_build_id": "0000000007",
        "nodepool_upload_id": uploading})
    no_ids = _volume(ec2, boot, OURS)
    bare_instance = _run(ec2, boot, OURS)
    # Leaks by the same rule: an upload nobody records, a node id unknown.
    lost_upload = _volume(ec2, boot, {
        **OURS, "nodepool_build_id": "0000000007",
        "nodepool_upload_id": "0000009999"})
    lost_node = _run(ec2, boot, {**OURS, "nodepool_node_id": "9999999999"})

    _passes(launcher, 1)
    assert _alive(aws, lost_node) and _volume_exists(ec2, lost_upload)
    _passes(launcher, 2)
    wait_for(lambda: not _alive(aws, lost_node), what="leaked instance gone")
    assert not _volume_exists(ec2, lost_upload)
    assert _volume_exists(ec2, in_progress)
    assert _volume_exists(ec2, no_ids)
    assert _alive(aws, bare_instance)


def test_node_id_of_another_providers_node_is_a_leak(env, aws):
    # Upstream counts as known only the nodes of the provider the object
    # is tagged with: a node id that belongs to another provider's node
    # cannot be this provider's instance.
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    ec2, boot = aws.ec2(), aws.boot
    ours_node = _seed_node(env.client, "aws")
    theirs_node = _seed_node(env.client, "elsewhere")
    kept = _run(ec2, boot, {**OURS, "nodepool_node_id": ours_node})
    reaped = _run(ec2, boot, {**OURS, "nodepool_node_id": theirs_node})
    _passes(launcher, 2)
    wait_for(lambda: not _alive(aws, reaped), what="mis-tagged instance gone")
    assert _alive(aws, kept)
