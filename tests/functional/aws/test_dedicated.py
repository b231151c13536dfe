"""Dedicated-host labels: a host per node, released after the instance."""

from __future__ import annotations

from tests.functional.aws.helpers import adapter_of, tags
from tests.functional.launcher.helpers import wait_for


def _host_state(aws, host_id):
    hosts = aws.ec2().describe_hosts(HostIds=[host_id])["Hosts"]
    return hosts[0].get("State") if hosts else None


def dedicated_provider(aws):
    label = aws.label("dedicated", **{"dedicated-host": True})
    return aws.provider(labels=[label], pool_extra={
        "availability-zone": aws.boot["availability_zone"]})


def test_dedicated_host_launch_and_delete(env, aws):
    env.write_config([dedicated_provider(aws)])
    env.start_launcher()
    rid = env.zuul.submit(["dedicated"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    node_id = req["nodes"][0]
    node = env.zuul.get_node(node_id)
    external = node["external_id"]
    assert set(external) == {"instance", "host"}
    assert external["instance"].startswith("i-")
    assert external["host"].startswith("h-")
    [host] = aws.ec2().describe_hosts(HostIds=[external["host"]])["Hosts"]
    assert tags(host)["nodepool_node_id"] == node_id
    [record] = aws.instances(**{"instance-id": [external["instance"]]})
    assert record["Placement"]["HostId"] == external["host"]
    nodes = env.zuul.accept(rid)
    env.zuul.release(nodes)
    env.zuul.wait_node_gone(node_id, timeout=20)
    assert not aws.instances(**{"instance-id": [external["instance"]]})
    assert _host_state(aws, external["host"]) == "released"


def test_leaked_host_released_on_second_pass(env, aws):
    env.write_config([dedicated_provider(aws)])
    launcher = env.start_launcher()
    ec2 = aws.ec2()
    [host] = ec2.allocate_hosts(
        AvailabilityZone=aws.boot["availability_zone"],
        InstanceType="t3.medium", Quantity=1,
        TagSpecifications=[{"ResourceType": "dedicated-host", "Tags": [
            {"Key": "nodepool_provider_name", "Value": "aws"},
            {"Key": "nodepool_node_id", "Value": "9999999999"}]}])["HostIds"]
    adapter = adapter_of(launcher)
    launcher.cleanup_worker.run_once()
    assert _host_state(aws, host) == "available"
    adapter.forget_listing()
    launcher.cleanup_worker.run_once()
    wait_for(lambda: _host_state(aws, host) == "released",
             what="leaked host released")
