"""Leak cleanup: our tag + unknown node → deleted on the second pass only."""

from __future__ import annotations

from nodepool.driver.aws import batchtags
from tests.functional.aws.helpers import adapter_of, instance_id
from tests.functional.launcher.helpers import wait_for


def _tagspec(tags: dict) -> list[dict]:
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    return [{"ResourceType": "instance", "Tags": pairs}]


def _run(ec2, boot, tags=None, count=1) -> list[str]:
    kw = {"TagSpecifications": _tagspec(tags)} if tags else {}
    answer = ec2.run_instances(ImageId=boot["image_id"], MinCount=count,
                               MaxCount=count, InstanceType="t3.micro", **kw)
    return [i["InstanceId"] for i in
            sorted(answer["Instances"], key=lambda i: i["AmiLaunchIndex"])]


def _alive(aws, iid) -> bool:
    return bool(aws.instances(**{"instance-id": [iid]}))


def _volume(ec2, boot, tags) -> str:
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    return ec2.create_volume(
        Size=1, AvailabilityZone=boot["availability_zone"],
        TagSpecifications=[{"ResourceType": "volume",
                            "Tags": pairs}])["VolumeId"]


def _volume_exists(ec2, volume_id) -> bool:
    return bool(ec2.describe_volumes(Filters=[
        {"Name": "volume-id", "Values": [volume_id]}])["Volumes"])


def test_leaked_instances_and_volumes(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    live_node = req["nodes"][0]
    live_instance = instance_id(env.zuul.get_node(live_node))

    ec2 = aws.ec2()
    boot = aws.boot
    ours = {"nodepool_provider_name": "aws", "nodepool_pool_name": "main"}
    [leaked] = _run(ec2, boot, {**ours, "nodepool_node_id": "9999999999"})
    [foreign] = _run(ec2, boot, {"nodepool_provider_name": "other",
                                 "nodepool_node_id": "9999999998"})
    [untagged] = _run(ec2, boot)
    # A batch whose first slot is our live node and second an unknown one:
    # only the second instance is a leak, read from the batch tags alone.
    batch = _run(ec2, boot, {**ours, **batchtags.encode(
        "tok", [live_node, "9999999997"])}, count=2)
    leaked_volume = _volume(ec2, boot, {**ours,
                                        "nodepool_node_id": "9999999996"})
    other_volume = _volume(ec2, boot, {"nodepool_provider_name": "other"})

    cleanup = launcher.cleanup_worker
    adapter = adapter_of(launcher)
    adapter.forget_listing()      # list_instances caches for 2 s
    cleanup.run_once()
    # First pass: only suspects, nothing deleted.
    assert all(_alive(aws, i) for i in
               [leaked, foreign, untagged, live_instance] + batch)
    assert _volume_exists(ec2, leaked_volume)
    adapter.forget_listing()
    cleanup.run_once()
    wait_for(lambda: not _alive(aws, leaked), what="leaked instance gone")
    wait_for(lambda: not _alive(aws, batch[1]), what="leaked batch slot")
    assert not _volume_exists(ec2, leaked_volume)
    for iid in (foreign, untagged, live_instance, batch[0]):
        assert _alive(aws, iid), iid
    assert _volume_exists(ec2, other_volume)
    node = env.zuul.get_node(live_node)
    assert node["state"] == "ready"


def test_instance_gone_before_second_pass_is_not_deleted_twice(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    ec2 = aws.ec2()
    [leaked] = _run(ec2, aws.boot, {"nodepool_provider_name": "aws",
                                    "nodepool_node_id": "9999999999"})
    adapter_of(launcher).forget_listing()
    launcher.cleanup_worker.run_once()
    ec2.terminate_instances(InstanceIds=[leaked])
    before = aws.local.stats()["calls"].get("TerminateInstances", 0)
    adapter_of(launcher).forget_listing()
    launcher.cleanup_worker.run_once()
    assert aws.local.stats()["calls"].get("TerminateInstances", 0) == before


def test_listing_leaves_terminated_instances_to_ec2(env, aws):
    # EC2 lists a terminated instance for about an hour: at tens of
    # launches a second a listing that asked for them would parse tens of
    # thousands of records every few seconds.
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    ec2 = aws.ec2()
    ours = {"nodepool_provider_name": "aws"}
    live = _run(ec2, aws.boot, ours)
    ended = _run(ec2, aws.boot, ours, count=5)
    ec2.terminate_instances(InstanceIds=ended)
    adapter = adapter_of(launcher)
    adapter.forget_listing()
    aws.local.reset_stats()
    listed = {i.external_id for i in adapter.list_instances()}
    assert set(live) <= {e.get("instance") if isinstance(e, dict) else e
                         for e in listed}
    described = aws.local.stats()["describe_instances"]
    assert described["calls"] >= 1
    assert described["terminated"] == 0, described
