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
    # the raw tag is the anchor's; the instance's own node is reported
    assert tags["nodepool_node_id"] == "0000000007"
    assert tags_of(record)["nodepool_node_id"] == "0000000008"
    assert to_instance({**record, "InstanceId": "i-2"}, "r").node_id == \
        "0000000008"
    # a batched record the mapping cannot place has no node at all
    lost = {**record, "AmiLaunchIndex": 5}
    assert "nodepool_node_id" not in tags_of(lost)


def test_upstream_address_mapping():
    # upstream: IPv6 is the first address of the first interface only;
    # host_id is never set for AWS
    record = {**RECORD, "Placement": {"AvailabilityZone": "z",
                                      "HostId": "h-1"},
              "PublicIpAddress": None, "Ipv6Address": "2600::top",
              "NetworkInterfaces": [
                  {"Ipv6Addresses": []},
                  {"Ipv6Addresses": [{"Ipv6Address": "2600::2"}]}]}
    inst = to_instance(record, "r")
    assert inst.public_ipv6 is None and inst.host_id is None
    assert inst.interface_ip == "10.0.0.5"
    record["NetworkInterfaces"][0]["Ipv6Addresses"] = [
        {"Ipv6Address": "2600::a"}, {"Ipv6Address": "2600::b"}]
    inst = to_instance(record, "r")
    assert inst.public_ipv6 == inst.interface_ip == "2600::a"
