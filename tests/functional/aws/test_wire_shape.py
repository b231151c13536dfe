"""An AWS node's znode carries what upstream Nodepool 11 would write.

Our launcher launches nodes against the local AWS; the test reads each
node's raw JSON from ZooKeeper and the instance as EC2 describes it
(boto3), and derives every expected field from the instance by upstream's
mapping (``AwsInstance`` and the state-machine launcher):

- ``external_id`` ``{"instance": InstanceId}`` (``"host"`` added for a
  dedicated host), ``cloud`` "AWS", ``region`` the provider's region,
  ``az`` the placement zone, ``host_id`` null;
- ``public_ipv4``/``private_ipv4`` from ``PublicIpAddress``/
  ``PrivateIpAddress``, ``public_ipv6`` the first address of the first
  interface, ``interface_ip`` public IPv4, else IPv6, else private IPv4;
- ``resources``: ``cores`` = ``VCpuInfo.DefaultCores``, ``ram`` =
  ``MemoryInfo.SizeInMiB``, ``instances`` 1, the vCPUs
  (``DefaultVCpus``) under the family's vCPU quota code (on-demand or
  spot), and for a label with ``volume-type`` its size under that type's
  EBS code; a dedicated-host node: one instance, no cores or ram;
- ``node_properties`` ``{"fleet": <label uses fleet>, "spot": <label
  uses spot>}``; ``attributes`` the pool's ``node-attributes``;
  ``image_id`` the cloud image's name; the image's connection settings;
  ``hostname`` and ``driver_data`` null.  Zuul's view of the node
  (``zuulview.host_entry``) is compared as well.

The quota codes are AWS's (Service Quotas): L-1216C47A "Running On-Demand
Standard instances", L-34B43A08 "All Standard Spot Instance Requests",
L-7A658B76 "Storage for gp3 volumes" -- facts, not our output.
"""

from __future__ import annotations

import json

import pytest

from tests.functional.zuulview import host_entry

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"
STANDARD_ON_DEMAND, STANDARD_SPOT = "L-1216C47A", "L-34B43A08"
GP3_STORAGE = "L-7A658B76"


def raw_node(client, node_id: str) -> dict:
    data, _ = client.get(f"{NODES}/{node_id}")
    return json.loads(data)


def describe(aws, instance_id: str) -> dict:
    reservations = aws.ec2().describe_instances(
        InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def type_info(aws, instance_type: str) -> dict:
    return aws.ec2().describe_instance_types(
        InstanceTypes=[instance_type])["InstanceTypes"][0]


def expected_fields(aws, record: dict, label: dict, pool: dict,
                    image_name: str, host: str | None = None) -> dict:
    """What upstream's launcher writes for this instance and label."""
    external = {"instance": record["InstanceId"]}
    if host:
        external["host"] = host
    public4 = record.get("PublicIpAddress")
    private4 = record.get("PrivateIpAddress")
    public6 = None
    for nic in record.get("NetworkInterfaces", [])[:1]:
        if nic.get("Ipv6Addresses"):
            public6 = nic["Ipv6Addresses"][0].get("Ipv6Address")
    spot = bool(label.get("use-spot", False))
    if label.get("dedicated-host"):
        resources = {"cores": 0, "instances": 1, "ram": 0}
    else:
        info = type_info(aws, record["InstanceType"])
        resources = {"cores": info["VCpuInfo"]["DefaultCores"],
                     "instances": 1,
                     "ram": info["MemoryInfo"]["SizeInMiB"],
                     STANDARD_SPOT if spot else STANDARD_ON_DEMAND:
                     info["VCpuInfo"]["DefaultVCpus"]}
    if label.get("volume-type") == "gp3" and label.get("volume-size"):
        resources[GP3_STORAGE] = label["volume-size"]
    return {
        "external_id": external,
        "cloud": "AWS",
        "region": aws.boot["region"],
        "az": record["Placement"]["AvailabilityZone"],
        "host_id": None,
        "public_ipv4": public4,
        "private_ipv4": private4,
        "public_ipv6": public6,
        "interface_ip": public4 or public6 or private4,
        "resources": resources,
        "node_properties": {"fleet": bool(label.get("fleet")),
                            "spot": spot},
        "attributes": pool.get("node-attributes"),
        "image_id": image_name,
        "username": "zuul",
        "connection_type": "ssh",
        "connection_port": 22,
        "python_path": "auto",
        "shell_type": None,
        "host_keys": [],
        "slot": None,
        "hostname": None,
        "driver_data": None,
    }


def compare(node: dict, expected: dict) -> list[str]:
    problems = [f"{key}: ours {node.get(key)!r}, upstream {value!r}"
                for key, value in expected.items() if node.get(key) != value]
    # What a job sees (Zuul 14.3's inventory entry) is the same, too.
    theirs = host_entry({**node, **expected})
    if host_entry(node) != theirs:
        problems.append(f"Zuul view: ours {host_entry(node)!r}, "
                        f"upstream {theirs!r}")
    return problems


def test_node_fields_match_upstream(env, aws):
    labels = [aws.label("small"),
              aws.label("spot", **{"use-spot": True}),
              aws.label("disk", **{"volume-type": "gp3",
                                   "volume-size": 12})]
    provider = aws.provider(labels=labels, pool_extra={
        "node-attributes": {"site": "lab", "rack": 7}})
    pool = provider["pools"][0]
    env.write_config([provider])
    env.start_launcher()
    rid = env.zuul.submit(["small", "spot", "disk"], tenant="tenant-w")
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
    assert req["state"] == "fulfilled", req
    by_label = {label["name"]: label for label in labels}
    problems = []
    for node_id in req["nodes"]:
        node = raw_node(env.client, node_id)
        assert node["state"] == "ready"
        assert isinstance(node["external_id"], dict), node["external_id"]
        record = describe(aws, node["external_id"]["instance"])
        label = by_label[node["type"][0]]
        problems += [f"{label['name']} {p}" for p in compare(
            node, expected_fields(aws, record, label, pool, "ami"))]
    assert not problems, "\n".join(problems)


def test_dedicated_host_node_fields_match_upstream(env, aws):
    label = aws.label("dedicated", **{"dedicated-host": True})
    provider = aws.provider(labels=[label], pool_extra={
        "availability-zone": aws.boot["availability_zone"]})
    env.write_config([provider])
    env.start_launcher()
    rid = env.zuul.submit(["dedicated"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
    assert req["state"] == "fulfilled", req
    node = raw_node(env.client, req["nodes"][0])
    record = describe(aws, node["external_id"]["instance"])
    host = record["Placement"]["HostId"]
    problems = compare(node, expected_fields(
        aws, record, label, provider["pools"][0], "ami", host=host))
    assert not problems, "\n".join(problems)


def test_hostname_is_null_like_upstream(env, aws):
    env.write_config([aws.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=60)
    assert req["state"] == "fulfilled", req
    node = raw_node(env.client, req["nodes"][0])
    assert node["hostname"] is None
    # The instance is still named after the node, as upstream names it.
    record = describe(aws, node["external_id"]["instance"])
    tags = {t["Key"]: t["Value"] for t in record.get("Tags", [])}
    assert tags["Name"] == f"np{req['nodes'][0]}"
