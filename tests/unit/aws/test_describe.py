"""Instance records → Instance values, and the watcher thread."""

from __future__ import annotations

from nodepool.driver.aws import batchtags
from nodepool.driver.aws.describe import instance_state, tags_of, to_instance
from nodepool.driver.instance import InstanceState

RECORD = {
    "InstanceId": "i-1", "State": {"Name": "running"},
    "PrivateIpAddress": "10.0.0.5", "PublicIpAddress": "54.1.2.3",
    "Placement": {"AvailabilityZone": "us-east-1a"},
    "InstanceType": "t3.medium", "InstanceLifecycle": "spot",
    "NetworkInterfaces": [{"Ipv6Addresses": [{"Ipv6Address": "2600::1"}]}],
    "Tags": [{"Key": "nodepool_node_id", "Value": "0000000001"},
             {"Key": "nodepool_provider_name", "Value": "aws"}],
}


def test_state_table():
    for name, state in [("pending", InstanceState.PENDING),
                        ("running", InstanceState.RUNNING),
                        ("shutting-down", InstanceState.STOPPING),
                        ("stopping", InstanceState.STOPPING),
                        ("terminated", InstanceState.DELETED),
                        ("stopped", InstanceState.ERROR),
                        ("weird", InstanceState.UNKNOWN)]:
        assert instance_state({"State": {"Name": name}}) is state


def test_to_instance():
    inst = to_instance(RECORD, "us-east-1", {"instances": 1, "cores": 2})
    assert inst.external_id == "i-1"
    assert inst.state is InstanceState.RUNNING
    assert inst.interface_ip == "54.1.2.3"
    assert (inst.private_ipv4, inst.public_ipv6) == ("10.0.0.5", "2600::1")
    assert (inst.az, inst.region, inst.cloud) == \
        ("us-east-1a", "us-east-1", "AWS")
    assert inst.node_id == "0000000001" and inst.provider_name == "aws"
    assert inst.node_properties == {"spot": True, "fleet": False}
    assert inst.resources == {"instances": 1, "cores": 2}


def test_private_only_interface_ip():
    record = {**RECORD, "PublicIpAddress": None, "NetworkInterfaces": []}
    assert to_instance(record, "r").interface_ip == "10.0.0.5"


def test_node_id_derived_from_batch_tags():
    tags = batchtags.encode("tok", ["0000000007", "0000000008"])
    record = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
              "AmiLaunchIndex": 1}
    assert tags_of(record)["nodepool_node_id"] == "0000000008"
