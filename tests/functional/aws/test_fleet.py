"""Fleet labels: CreateFleet (instant) over a launch template."""

from __future__ import annotations

from tests.functional.aws.helpers import instance_id, tags


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
    env.start_launcher()
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
    templates = aws.ec2().describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateName"].startswith("nodepool-aws-")
            for t in templates] == [True]


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
