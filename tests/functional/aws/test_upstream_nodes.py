"""Nodes written by upstream Nodepool's launcher are deletable by ours.

A site migrating from upstream Nodepool 11 starts our launcher on a
ZooKeeper full of upstream's nodes.  Upstream's AWS driver writes a node's
``external_id`` as ``{"instance": "i-..."}`` (plus ``"host": "h-..."`` for
a dedicated host, and only the host while the instance is not made yet);
nodes from before that change carry the plain instance id.  Here the
instances (and a dedicated host) are started in the local AWS with
upstream's tags, the node znodes are written as upstream's ``toDict``
would write them (every key, ``hostname`` null), and our launcher must
terminate each instance, release each host and remove each znode.  The
``nodepool list`` command shows both shapes first.
"""

from __future__ import annotations

import io
import json
import time

import pytest

from nodepool.cmd.nodepoolcmd import main
from tests.functional.launcher.helpers import wait_for

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"


def upstream_node(aws, node_id: str, external_id, state: str,
                  record: dict | None) -> dict:
    """A node znode as upstream's launcher leaves it for an AWS node."""
    record = record or {}
    return {
        "state": state, "state_time": time.time(),
        "cloud": "AWS", "provider": "aws", "pool": "main",
        "type": ["small"], "allocated_to": None,
        "az": aws.boot["availability_zone"], "region": aws.boot["region"],
        "public_ipv4": record.get("PublicIpAddress"),
        "private_ipv4": record.get("PrivateIpAddress"),
        "public_ipv6": None, "host_id": None,
        "interface_ip": record.get("PublicIpAddress"),
        "connection_port": 22, "ssh_port": 22, "image_id": "ami",
        "launcher": "upstream-host-4242", "created_time": time.time(),
        "external_id": external_id, "hostname": None, "comment": None,
        "user_data": None, "hold_job": None, "host_keys": [],
        "username": "zuul", "connection_type": "ssh", "shell_type": None,
        "hold_expiration": None,
        "resources": {"cores": 1, "instances": 1, "ram": 4096,
                      "L-1216C47A": 2},
        "slot": None, "attributes": None, "python_path": "auto",
        "tenant_name": "tenant-u", "driver_data": None,
        "requestor": "zuul", "node_properties": {"fleet": False,
                                                 "spot": False},
    }


def upstream_tags(node_id: str) -> list[dict]:
    tags = {"nodepool_node_id": node_id, "nodepool_pool_name": "main",
            "nodepool_provider_name": "aws", "Name": f"np{node_id}"}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def run_instance(aws, node_id: str, host: str | None = None) -> dict:
    params = {"ImageId": aws.boot["image_id"], "InstanceType": "t3.medium",
              "KeyName": aws.boot["key_name"], "MinCount": 1,
              "MaxCount": 1, "SubnetId": aws.boot["subnet_id"],
              "TagSpecifications": [{"ResourceType": "instance",
                                     "Tags": upstream_tags(node_id)}]}
    if host:
        params["Placement"] = {
            "AvailabilityZone": aws.boot["availability_zone"],
            "HostId": host, "Tenancy": "host"}
    return aws.ec2().run_instances(**params)["Instances"][0]


def allocate_host(aws, node_id: str) -> str:
    return aws.ec2().allocate_hosts(
        AvailabilityZone=aws.boot["availability_zone"],
        InstanceType="t3.medium", Quantity=1,
        TagSpecifications=[{"ResourceType": "dedicated-host",
                            "Tags": upstream_tags(node_id)}])["HostIds"][0]


def host_state(aws, host_id: str) -> str | None:
    hosts = aws.ec2().describe_hosts(HostIds=[host_id])["Hosts"]
    return hosts[0].get("State") if hosts else None


def alive(aws, instance_id: str) -> bool:
    return bool(aws.instances(**{"instance-id": [instance_id]}))


def test_upstream_nodes_of_both_shapes_are_deleted(env, aws, capsys):
    label = aws.label("dedicated", **{"dedicated-host": True})
    config = env.write_config([aws.provider(
        labels=[aws.label(), label],
        pool_extra={"availability-zone": aws.boot["availability_zone"]})])
    plain = run_instance(aws, "0000000901")
    as_dict = run_instance(aws, "0000000902")
    host = allocate_host(aws, "0000000903")
    on_host = run_instance(aws, "0000000903", host=host)
    lone_host = allocate_host(aws, "0000000904")    # instance never made
    nodes = {
        # before upstream's object form, and in the state Zuul leaves it
        "0000000901": ("used", plain["InstanceId"], plain),
        "0000000902": ("used", {"instance": as_dict["InstanceId"]},
                       as_dict),
        "0000000903": ("deleting", {"instance": on_host["InstanceId"],
                                    "host": host}, on_host),
        # upstream's create machine stores the host before the instance
        "0000000904": ("building", {"host": lone_host}, None),
    }
    for node_id, (state, external, record) in nodes.items():
        env.client.create(f"{NODES}/{node_id}", json.dumps(upstream_node(
            aws, node_id, external, state, record)).encode(),
            makepath=True)

    capsys.readouterr()
    assert main(["-c", config, "list"], stdin=io.StringIO("")) == 0
    listing = capsys.readouterr().out
    assert f"| {plain['InstanceId']} " in listing
    assert json.dumps({"instance": as_dict["InstanceId"]}) in listing
    assert json.dumps({"instance": on_host["InstanceId"],
                       "host": host}) in listing
    assert all(alive(aws, r["InstanceId"])
               for r in (plain, as_dict, on_host))

    env.start_launcher()
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id, timeout=60)
    for record in (plain, as_dict, on_host):
        assert not alive(aws, record["InstanceId"]), record["InstanceId"]
    wait_for(lambda: host_state(aws, host) == "released", timeout=30,
             what="the dedicated node's host released")
    wait_for(lambda: host_state(aws, lone_host) == "released", timeout=30,
             what="the host-only node's host released")
