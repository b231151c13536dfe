"""Fleet labels: CreateFleet (instant) over a launch template."""

from __future__ import annotations

import json
import time

from tests.functional.aws.helpers import adapter_of, instance_id, tags


def _node(env, labels=("fleet",)):
    rid = env.zuul.submit(list(labels))
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    node = env.zuul.get_node(req["nodes"][0])
    node["_id"] = req["nodes"][0]
    return node


def fleet_label(aws, name="fleet", strategy="prioritized", **extra):
    label = aws.label(name, fleet={
        "instance-types": ["t3.medium", "t3.large"],
        "allocation-strategy": strategy}, **extra)
    del label["instance-type"]
    return label


def test_on_demand_fleet(env, aws):
    env.write_config([aws.provider(labels=[fleet_label(
        aws, tags={"team": "ci"})])])
    launcher = env.start_launcher()
    node = _node(env)
    assert node["node_properties"] == {"spot": False, "fleet": True}
    [record] = aws.instances(**{"instance-id": [instance_id(node)]})
    assert record["InstanceType"] == "t3.medium"     # priority 0
    assert record.get("InstanceLifecycle") is None
    record_tags = tags(record)
    assert record_tags["nodepool_node_id"] == node["_id"]
    assert record_tags["Name"] == f"np{node['_id']}"
    assert record_tags["nodepool_provider_name"] == "aws"
    assert record_tags["team"] == "ci"
    # The node costs what the instance EC2 picked costs (physical cores,
    # vCPUs under the quota code, as upstream counts them).
    assert node["resources"] == {"instances": 1, "cores": 1, "ram": 4096,
                                 "L-1216C47A": 2}
    calls = aws.local.stats()["calls"]
    assert calls["CreateFleet"] == 1 and "RunInstances" not in calls
    [template] = aws.ec2().describe_launch_templates()["LaunchTemplates"]
    # Upstream's name and tags, so its rule finds ours and ours its.
    assert template["LaunchTemplateName"].startswith(
        "nodepool-launch-template-")
    assert tags(template) == {"nodepool_managed": "True",
                              "nodepool_provider_name": "aws",
                              "nodepool_installation": launcher.installation}


def test_spot_fleet_reuses_its_template(env, aws):
    label = fleet_label(aws, strategy="price-capacity-optimized",
                        **{"use-spot": True})
    env.write_config([aws.provider(labels=[label])])
    env.start_launcher()
    first = _node(env)
    second = _node(env)
    assert first["node_properties"] == {"spot": True, "fleet": True}
    [record] = aws.instances(**{"instance-id": [instance_id(second)]})
    assert record["InstanceLifecycle"] == "spot"
    calls = aws.local.stats()["calls"]
    assert calls["CreateFleet"] == 2
    assert calls["CreateLaunchTemplate"] == 1


def _upload(env, upload_id: str, ami: str) -> None:
    env.client.create(
        "/nodepool/images/ubuntu/builds/0000000001/providers/aws/images/"
        f"{upload_id}", json.dumps({
            "state": "ready", "state_time": time.time(),
            "external_id": ami, "external_name": "ubuntu",
            "format": "raw", "username": "ubuntu"}).encode(), makepath=True)


def _register(aws, name: str) -> str:
    """An AMI as a builder registers it (root device /dev/sda1)."""
    ec2 = aws.ec2()
    volume = ec2.create_volume(Size=1,
                               AvailabilityZone=aws.boot["availability_zone"])
    snap = ec2.create_snapshot(VolumeId=volume["VolumeId"])
    return ec2.register_image(
        Name=name, RootDeviceName="/dev/sda1", BlockDeviceMappings=[{
            "DeviceName": "/dev/sda1",
            "Ebs": {"SnapshotId": snap["SnapshotId"]}}])["ImageId"]


def test_new_image_reuses_the_template(env, aws):
    label = fleet_label(aws, "disk", **{"volume-size": 20})
    del label["cloud-image"]
    label["diskimage"] = "ubuntu"
    env.write_config([aws.provider(labels=[label],
                                   diskimages=[{"name": "ubuntu"}])],
                     diskimages=[{"name": "ubuntu"}])
    first_ami, second_ami = _register(aws, "ubuntu-1"), \
        _register(aws, "ubuntu-2")
    _upload(env, "0000000001", first_ami)
    launcher = env.start_launcher()
    first = _node(env, ["disk"])
    _upload(env, "0000000002", second_ami)     # a newer upload
    second = _node(env, ["disk"])
    images = {instance_id(n): r["ImageId"] for n in (first, second)
              for r in aws.instances(**{"instance-id": [instance_id(n)]})}
    assert images == {instance_id(first): first_ami,
                      instance_id(second): second_ami}
    calls = aws.local.stats()["calls"]
    assert calls["CreateLaunchTemplate"] == 1
    assert len(aws.ec2().describe_launch_templates()["LaunchTemplates"]) == 1
    # The template a builder's AMI needs is the one cleanup computes for
    # the label: it survives the clean-up of unused templates.
    fleet = adapter_of(launcher).fleet
    assert fleet.clean_templates() == 0
    assert len(aws.ec2().describe_launch_templates()["LaunchTemplates"]) == 1


def _template(ec2, name: str, provider: str | None,
              installation: str | None = None) -> None:
    kw = {}
    if provider:
        pairs = [{"Key": "nodepool_provider_name", "Value": provider},
                 {"Key": "nodepool_managed", "Value": "True"}]
        if installation:
            pairs.append({"Key": "nodepool_installation",
                          "Value": installation})
        kw["TagSpecifications"] = [{"ResourceType": "launch-template",
                                    "Tags": pairs}]
    ec2.create_launch_template(LaunchTemplateName=name,
                               LaunchTemplateData={"KeyName": "k"}, **kw)


def _template_names(aws) -> set[str]:
    return {t["LaunchTemplateName"] for t in
            aws.ec2().describe_launch_templates()["LaunchTemplates"]}


def test_unused_templates_of_ours_are_deleted_once(env, aws):
    env.write_config([aws.provider(labels=[fleet_label(aws)])])
    launcher = env.start_launcher()
    _node(env)
    [used] = _template_names(aws)
    ec2 = aws.ec2()
    prefix = "nodepool-launch-template-"
    _template(ec2, prefix + "0" * 64, "aws")          # an old config's
    _template(ec2, prefix + "1" * 64, "other")        # another provider's
    _template(ec2, prefix + "2" * 64, None)           # untagged
    _template(ec2, "someone-elses", "aws")            # not our name
    # Of our provider name: our installation's old config (reaped), and
    # another installation's label on the same account (kept).
    _template(ec2, prefix + "4" * 64, "aws", launcher.installation)
    _template(ec2, prefix + "5" * 64, "aws", "another-installation")
    adapter = adapter_of(launcher)
    adapter.list_resources()          # the leak pass cleans templates
    assert _template_names(aws) == {used, prefix + "1" * 64,
                                    prefix + "2" * 64, prefix + "5" * 64,
                                    "someone-elses"}
    assert adapter.fleet.templates_deleted == 2
    # Once per provider start, as upstream: later passes leave them be.
    _template(ec2, prefix + "3" * 64, "aws")
    before = aws.local.stats()["calls"].get("DescribeLaunchTemplates", 0)
    adapter.list_resources()
    assert aws.local.stats()["calls"].get("DescribeLaunchTemplates",
                                          0) == before
    assert prefix + "3" * 64 in _template_names(aws)
    # A launch still works: the template in use was kept (and is known,
    # so no CreateLaunchTemplate is sent for it).
    creates = aws.local.stats()["calls"]["CreateLaunchTemplate"]
    _node(env)
    assert aws.local.stats()["calls"]["CreateLaunchTemplate"] == creates


def test_template_deleted_under_us_is_made_again(env, aws):
    env.write_config([aws.provider(labels=[fleet_label(aws)])])
    env.start_launcher()
    _node(env)
    [name] = _template_names(aws)
    aws.ec2().delete_launch_template(LaunchTemplateName=name)
    node = _node(env)
    assert aws.instances(**{"instance-id": [instance_id(node)]})
    assert _template_names(aws) == {name}
    assert aws.local.stats()["calls"]["CreateLaunchTemplate"] == 2


def test_provider_without_fleet_labels_leaves_templates_alone(env, aws):
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    name = "nodepool-launch-template-" + "0" * 64
    _template(aws.ec2(), name, "aws")
    adapter = adapter_of(launcher)
    adapter.list_resources()
    assert "DescribeLaunchTemplates" not in aws.local.stats()["calls"]
    assert name in _template_names(aws)
