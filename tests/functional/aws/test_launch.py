"""Launch and delete through the real launcher, boto3 → proxy → moto."""

from __future__ import annotations

import base64
import json
import time

from tests.functional.aws.helpers import instance_id
from tests.functional.launcher.helpers import wait_for


def _tags(record: dict) -> dict:
    return {t["Key"]: t["Value"] for t in record.get("Tags") or []}


def _fulfil(env, labels, **kw) -> tuple[str, dict]:
    rid = env.zuul.submit(labels, **kw)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    return rid, req


def _release_all(env, rid) -> list[str]:
    nodes = env.zuul.accept(rid)
    env.zuul.set_in_use(nodes)
    env.zuul.release(nodes)
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id, timeout=20)
    return nodes


def test_launch_and_delete(env, aws):
    env.write_config([aws.provider()])
    env.start_launcher()
    rid, req = _fulfil(env, ["small"], tenant="tenant-a")
    node = env.zuul.get_node(req["nodes"][0])
    assert node["state"] == "ready"
    assert node["provider"] == "aws"
    assert node["cloud"] == "AWS"
    assert node["region"] == aws.boot["region"]
    assert node["az"] == aws.boot["availability_zone"]
    assert node["hostname"] is None      # as upstream (Name tag: np<id>)
    assert set(node["external_id"]) == {"instance"}
    assert node["external_id"]["instance"].startswith("i-")
    assert node["host_keys"] == []
    assert node["username"] == "zuul"
    # t3.medium: 1 core, 2 vCPUs (the quota code counts vCPUs)
    assert node["resources"] == {"instances": 1, "cores": 1, "ram": 4096,
                                 "L-1216C47A": 2}
    assert node["node_properties"] == {"spot": False, "fleet": False}
    [record] = aws.instances(**{"instance-id": [instance_id(node)]})
    assert record["State"]["Name"] == "running"
    assert record["InstanceType"] == "t3.medium"
    assert record["ImageId"] == aws.boot["image_id"]
    assert record["KeyName"] == aws.boot["key_name"]
    _release_all(env, rid)
    wait_for(lambda: not aws.instances(), what="instance terminated")
    stats = aws.local.stats()
    assert stats["calls"]["TerminateInstances"] >= 1


def test_tags_on_instance_and_volume(env, aws):
    label = aws.label(tags={"team": "ci", "cost": 42, "Name": "ignored"},
                      **{"dynamic-tags": {"req": "{request.id}",
                                          "who": "{request.requestor}",
                                          "bad": "{request.nope}",
                                          "tenant": "{request.tenant_name}"}})
    env.write_config([aws.provider(labels=[label])])
    env.start_launcher()
    rid, req = _fulfil(env, ["small"], tenant="tenant-t")
    node_id = req["nodes"][0]
    node = env.zuul.get_node(node_id)
    [record] = aws.instances(**{"instance-id": [instance_id(node)]})
    tags = _tags(record)
    assert tags["nodepool_node_id"] == node_id
    assert tags["nodepool_pool_name"] == "main"
    assert tags["nodepool_provider_name"] == "aws"
    assert tags["Name"] == f"np{node_id}"
    assert tags["team"] == "ci" and tags["cost"] == "42"
    assert tags["req"] == rid
    assert tags["who"] == "zuul-sim"
    assert tags["tenant"] == "tenant-t"
    assert "bad" not in tags      # failed to format: logged, omitted
    volume_id = record["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    [volume] = aws.ec2().describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert _tags(volume)["nodepool_provider_name"] == "aws"
    assert _tags(volume)["nodepool_node_id"] == node_id


def test_public_and_private_ip(env, aws):
    public = aws.label("pub")
    private = aws.label("priv")
    pools = [
        {"name": "public", "max-servers": 5, "labels": [public],
         "subnet-id": aws.boot["subnet_id"], "host-key-checking": False},
        {"name": "private", "max-servers": 5, "labels": [private],
         "subnet-id": aws.boot["subnet_id"], "host-key-checking": False,
         "public-ipv4": False},
        {"name": "internal", "max-servers": 5,
         "labels": [aws.label("internal")],
         "subnet-id": aws.boot["subnet_id"], "host-key-checking": False,
         "use-internal-ip": True},
    ]
    env.write_config([aws.provider(pools=pools)])
    env.start_launcher()
    _, req = _fulfil(env, ["pub"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["public_ipv4"] and node["private_ipv4"]
    assert node["interface_ip"] == node["public_ipv4"]
    _, req = _fulfil(env, ["priv"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["public_ipv4"] is None
    assert node["interface_ip"] == node["private_ipv4"]
    _, req = _fulfil(env, ["internal"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["public_ipv4"]
    assert node["interface_ip"] == node["private_ipv4"]


def test_userdata_spot_and_launch_options(env, aws):
    label = aws.label(userdata="#!/bin/sh\necho hello\n",
                      **{"use-spot": True, "imdsv2": "required",
                         "ebs-optimized": True, "volume-type": "gp3",
                         "volume-size": 20, "iops": 4000,
                         "throughput": 200})
    env.write_config([aws.provider(labels=[label])])
    env.start_launcher()
    _, req = _fulfil(env, ["small"])
    node = env.zuul.get_node(req["nodes"][0])
    assert node["node_properties"] == {"spot": True, "fleet": False}
    assert node["resources"]["L-34B43A08"] == 2      # spot vCPU quota
    assert node["resources"]["L-7A658B76"] == 20     # gp3 storage GiB
    iid = instance_id(node)
    ec2 = aws.ec2()
    userdata = ec2.describe_instance_attribute(
        InstanceId=iid, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(userdata).decode() == "#!/bin/sh\necho hello\n"
    [record] = aws.instances(**{"instance-id": [iid]})
    assert record["InstanceLifecycle"] == "spot"
    assert record["MetadataOptions"]["HttpTokens"] == "required"
    assert record["EbsOptimized"] is True
    volume_id = record["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    # moto keeps size and type (it ignores Iops/Throughput; the unit
    # tests of params check those reach the call).
    assert (volume["Size"], volume["VolumeType"]) == (20, "gp3")


def test_diskimage_label_launches_its_upload(env, aws):
    label = aws.label("disk")
    del label["cloud-image"]
    label["diskimage"] = "ubuntu"
    provider = aws.provider(labels=[label],
                            diskimages=[{"name": "ubuntu"}])
    env.write_config([provider], diskimages=[{"name": "ubuntu"}])
    # The upload as the builder records it: its cloud id is the AMI.
    env.client.create(
        "/nodepool/images/ubuntu/builds/0000000001/providers/aws/images/"
        "0000000001", json.dumps({
            "state": "ready", "state_time": time.time(),
            "external_id": aws.boot["image_id"], "external_name": "ubuntu",
            "format": "raw", "username": "ubuntu"}).encode(), makepath=True)
    env.start_launcher()
    _, req = _fulfil(env, ["disk"])
    node = env.zuul.get_node(req["nodes"][0])
    [record] = aws.instances(**{"instance-id": [instance_id(node)]})
    assert record["ImageId"] == aws.boot["image_id"]
    assert node["image_id"].endswith("/providers/aws/images/0000000001")
