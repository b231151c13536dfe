"""RunInstances parameters and tags from a launch spec."""

from __future__ import annotations

from nodepool.driver.aws import params
from nodepool.driver.statemachine import RequestInfo

IMAGE = {"ImageId": "ami-1", "RootDeviceName": "/dev/xvda",
         "BlockDeviceMappings": [
             {"DeviceName": "/dev/xvda",
              "Ebs": {"SnapshotId": "snap-1", "VolumeSize": 8,
                      "VolumeType": "gp2", "Encrypted": False}},
             {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}


def test_all_tags_metadata_name_and_label_tags(spec_factory):
    spec = spec_factory(label={"tags": {"team": "ci", "n": 3,
                                        "Name": "label-name"}})
    tags = params.all_tags(spec)
    assert tags == {"team": "ci", "n": "3", "Name": "np0000000001",
                    "nodepool_node_id": "0000000001",
                    "nodepool_pool_name": "main",
                    "nodepool_provider_name": "aws"}


def test_dynamic_tags_render_and_bad_ones_are_omitted(spec_factory, caplog):
    request = RequestInfo(id="100-0000000042", requestor="zuul",
                          tenant_name="t1", labels=("small",))
    spec = spec_factory(request=request, label={"dynamic-tags": {
        "req": "{request.id}", "tenant": "{request.tenant_name}",
        "both": "{request.requestor}/{request.labels[0]}",
        "missing": "{request.nope}", "broken": "{request.id"}})
    assert params.dynamic_tags(spec) == {
        "req": "100-0000000042", "tenant": "t1", "both": "zuul/small"}
    assert "missing" in caplog.text and "broken" in caplog.text


def test_shared_and_node_tags_split(spec_factory):
    spec = spec_factory(label={"tags": {"team": "ci"},
                               "dynamic-tags": {"req": "{request.id}"}})
    shared = params.shared_tags(spec)
    assert "nodepool_node_id" not in shared and "Name" not in shared
    assert shared["nodepool_provider_name"] == "aws"
    assert shared["team"] == "ci"
    assert params.node_tags(spec) == {"req": "200-0000000007",
                                      "nodepool_node_id": "0000000001",
                                      "Name": "np0000000001"}


def test_our_tags_win_over_dynamic_tags(spec_factory):
    spec = spec_factory(label={"dynamic-tags": {
        "nodepool_provider_name": "evil", "Name": "x"}})
    tags = params.all_tags(spec)
    assert tags["nodepool_provider_name"] == "aws"
    assert tags["Name"] == "np0000000001"


def test_tag_specifications_cover_instance_and_volume():
    specs = params.tag_specifications({"a": "b"})
    assert [s["ResourceType"] for s in specs] == ["instance", "volume"]
    assert specs[0]["Tags"] == [{"Key": "a", "Value": "b"}]


def test_minimal_launch_params(spec_factory):
    call = params.launch_params(spec_factory(), IMAGE)
    assert call == {
        "ImageId": "ami-1", "InstanceType": "t3.medium", "KeyName": "key",
        "NetworkInterfaces": [{
            "DeviceIndex": 0, "DeleteOnTermination": True,
            "AssociatePublicIpAddress": True, "SubnetId": "subnet-1",
            "Groups": ["sg-1"]}]}


def test_every_label_option_reaches_the_call(spec_factory):
    spec = spec_factory(
        label={"ebs-optimized": True, "userdata": "#!/bin/sh",
               "iam-instance-profile": {"arn": "arn:aws:iam::1:ip/x"},
               "use-spot": True, "imdsv2": "required",
               "volume-type": "gp3", "volume-size": 40, "iops": 5000,
               "throughput": 250},
        pool={"public-ipv4": False, "public-ipv6": True,
              "availability-zone": "us-east-1b"})
    call = params.launch_params(spec, IMAGE)
    assert call["EbsOptimized"] is True
    assert call["UserData"] == "#!/bin/sh"
    assert call["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:ip/x"}
    assert call["InstanceMarketOptions"]["MarketType"] == "spot"
    assert call["MetadataOptions"] == {"HttpTokens": "required",
                                       "HttpEndpoint": "enabled"}
    assert call["Placement"] == {"AvailabilityZone": "us-east-1b"}
    nic = call["NetworkInterfaces"][0]
    assert nic["AssociatePublicIpAddress"] is False
    assert nic["Ipv6AddressCount"] == 1
    assert call["BlockDeviceMappings"] == [{
        "DeviceName": "/dev/xvda",
        "Ebs": {"SnapshotId": "snap-1", "VolumeSize": 40,
                "VolumeType": "gp3", "Iops": 5000, "Throughput": 250,
                "DeleteOnTermination": True}}]


def test_iam_profile_by_name_and_empty_mapping(spec_factory):
    spec = spec_factory(label={"iam-instance-profile": {"name": "prof"}})
    assert params.launch_params(spec, IMAGE)["IamInstanceProfile"] == \
        {"Name": "prof"}
    spec = spec_factory(label={"iam-instance-profile": {}})
    assert "IamInstanceProfile" not in params.launch_params(spec, IMAGE)


def test_iops_and_throughput_dropped_where_ec2_refuses_them():
    mappings = params.block_device_mappings(
        {"volume-type": "gp2", "iops": 100, "throughput": 10}, IMAGE)
    assert "Iops" not in mappings[0]["Ebs"]
    assert "Throughput" not in mappings[0]["Ebs"]
    mappings = params.block_device_mappings(
        {"volume-type": "io2", "iops": 100, "throughput": 10}, IMAGE)
    assert mappings[0]["Ebs"]["Iops"] == 100
    assert "Throughput" not in mappings[0]["Ebs"]


def test_no_volume_settings_keep_the_ami_defaults():
    assert params.block_device_mappings({}, IMAGE) is None


def test_spec_az_used_only_without_subnet(spec_factory):
    spec = spec_factory(az="us-east-1c")
    assert "Placement" not in params.launch_params(spec, IMAGE)
    spec = spec_factory(az="us-east-1c", pool={"subnet-id": None})
    assert params.launch_params(spec, IMAGE)["Placement"] == \
        {"AvailabilityZone": "us-east-1c"}


def test_batch_key_groups_by_pool_label_image(spec_factory):
    a = spec_factory("0000000001")
    b = spec_factory("0000000002", request=RequestInfo(id="other"))
    c = spec_factory("0000000003", label_name="big")
    d = spec_factory("0000000004", pool_name="other")
    assert params.batch_key(a) == params.batch_key(b)
    assert len({params.batch_key(x) for x in (a, c, d)}) == 3


def test_fleet_template_and_call(spec_factory):
    from nodepool.driver.aws import fleet
    spec = spec_factory(label={
        "instance-type": None, "userdata": "hi", "use-spot": True,
        "volume-size": 20,
        "fleet": {"instance-types": ["t3.medium", "t3.large"],
                  "allocation-strategy": "prioritized"}})
    data = fleet.template_data(spec, IMAGE)
    assert "InstanceType" not in data and "InstanceMarketOptions" not in data
    # The image goes into the call: the template depends on config only,
    # the root device aside (and no snapshot or size of the AMI).
    assert "ImageId" not in data and "Placement" not in data
    assert data["BlockDeviceMappings"] == [{
        "DeviceName": "/dev/xvda",
        "Ebs": {"VolumeSize": 20, "DeleteOnTermination": True}}]
    other_image = {**IMAGE, "ImageId": "ami-2", "BlockDeviceMappings": []}
    assert fleet.template_data(spec, other_image) == data
    assert data["UserData"] == "aGk="
    assert data["TagSpecifications"][0]["ResourceType"] == "volume"
    args = fleet.template_args("my provider!", data)
    [spec_tags] = args["TagSpecifications"]
    assert spec_tags["ResourceType"] == "launch-template"
    assert {t["Key"]: t["Value"] for t in spec_tags["Tags"]} == {
        "nodepool_managed": "True", "nodepool_provider_name": "my provider!"}
    name = fleet.template_name(args)
    assert name.startswith("nodepool-launch-template-") and len(name) < 128
    assert name == fleet.template_name(fleet.template_args(
        "my provider!", dict(data)))
    assert name != fleet.template_name(fleet.template_args("other", data))
    call = fleet.fleet_params(spec, name, "tok", "ami-1", "us-east-1b")
    assert call["LaunchTemplateConfigs"][0]["Overrides"] == [
        {"InstanceType": "t3.medium", "ImageId": "ami-1",
         "AvailabilityZone": "us-east-1b", "Priority": 0.0},
        {"InstanceType": "t3.large", "ImageId": "ami-1",
         "AvailabilityZone": "us-east-1b", "Priority": 1.0}]
    assert call["TargetCapacitySpecification"] == {
        "TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"}
    assert call["SpotOptions"] == {"AllocationStrategy": "prioritized"}
    assert call["Type"] == "instant" and call["ClientToken"] == "tok"
    tags = {t["Key"]: t["Value"]
            for t in call["TagSpecifications"][0]["Tags"]}
    assert tags["nodepool_node_id"] == "0000000001"
