"""Node serialisation: every key of zookeeper.md §5, legacy shapes on read."""

import json

import pytest

from nodepool.zk import BadZnode, Node, NodeState

SPEC_KEYS = {
    "state", "state_time", "created_time", "provider", "pool", "type",
    "allocated_to", "launcher", "cloud", "region", "az", "host_id",
    "external_id", "hostname", "interface_ip", "public_ipv4",
    "private_ipv4", "public_ipv6", "connection_type", "connection_port",
    "ssh_port", "username", "python_path", "shell_type", "host_keys",
    "image_id", "resources", "attributes", "tenant_name", "requestor",
    "slot", "driver_data", "node_properties", "comment", "user_data",
    "hold_job", "hold_expiration",
}


def test_every_spec_key_is_written_even_when_unknown():
    data = Node(state=NodeState.BUILDING).to_dict()
    assert set(data) == SPEC_KEYS
    assert data["node_properties"] == {}
    assert data["type"] == [] and data["host_keys"] == []
    assert data["username"] == "zuul"
    assert data["connection_port"] == data["ssh_port"] == 22
    assert data["comment"] is None


def test_ssh_port_mirrors_connection_port():
    node = Node(state=NodeState.READY, connection_port=2022)
    assert node.to_dict()["ssh_port"] == 2022
    node.ssh_port = 5986
    assert node.connection_port == 5986
    assert node.to_dict()["ssh_port"] == 5986


def test_missing_connection_port_falls_back_to_ssh_port_then_22():
    assert Node.from_dict("1", {"state": "ready",
                                "ssh_port": 2200}).connection_port == 2200
    assert Node.from_dict("1", {"state": "ready"}).connection_port == 22
    node = Node.from_dict("1", {"state": "ready", "connection_port": 5986,
                                "ssh_port": 1})
    assert node.connection_port == 5986
    assert "ssh_port" not in node.extra


def test_upstream_shapes_are_read():
    node = Node.from_dict("0000000007", {
        "state": "hold", "type": "ubuntu", "hold_expiration": "3600",
        "external_id": {"host": "h-1", "instance": "i-1"},
    })
    assert node.type == ["ubuntu"]
    assert node.hold_expiration == 3600
    assert node.external_id == {"host": "h-1", "instance": "i-1"}


@pytest.mark.parametrize("raw,expected", [
    ("abc", 0), ("", 0), (None, None), (7, 7), ("12.0", 12), (5.9, 5),
])
def test_hold_expiration_coercion(raw, expected):
    node = Node.from_dict("1", {"state": "hold", "hold_expiration": raw})
    assert node.hold_expiration == expected


def test_unknown_keys_survive_a_rewrite():
    raw = {"state": "ready", "span_info": {"trace": "abc"}, "zz": [1, 2]}
    node = Node.from_dict("1", raw)
    node.set_state(NodeState.IN_USE, now=5.0)
    data = node.to_dict()
    assert data["span_info"] == {"trace": "abc"} and data["zz"] == [1, 2]
    assert data["state"] == "in-use"


def test_from_dict_does_not_alias_the_input():
    raw = {"state": "ready", "type": ["a"], "span_info": {"x": 1}}
    node = Node.from_dict("1", raw)
    node.type.append("b")
    node.extra["span_info"]["x"] = 2
    assert raw == {"state": "ready", "type": ["a"], "span_info": {"x": 1}}


@pytest.mark.parametrize("raw", [
    {"state": "bogus"}, {"type": ["x"]}, {"state": None},
])
def test_unknown_or_missing_state_is_rejected(raw):
    with pytest.raises(BadZnode):
        Node.from_dict("1", raw)


def test_set_state_stamps_state_time_and_first_created_time():
    node = Node()
    node.set_state(NodeState.INIT, now=100.0)
    assert (node.state_time, node.created_time) == (100.0, 100.0)
    node.set_state(NodeState.BUILDING, now=150.0)
    assert (node.state_time, node.created_time) == (150.0, 100.0)
    with pytest.raises(ValueError):
        node.set_state("exploded")


def test_round_trip_of_every_field_through_json():
    values = dict(
        state="ready", state_time=1.5, created_time=1.25, provider="p",
        pool="main", type=["a", "b"], allocated_to="100-0000000001",
        launcher="host-PoolWorker.p-main-abc", cloud="c", region="r",
        az="az1", host_id="hv1", external_id="i-1", hostname="np1",
        interface_ip="10.0.0.1", public_ipv4="1.2.3.4",
        private_ipv4="10.0.0.1", public_ipv6="::1", connection_type="ssh",
        connection_port=2022, username="ubuntu", python_path="auto",
        shell_type="sh", host_keys=["ssh-ed25519 AAAA"], image_id="img",
        resources={"cores": 2, "ram": 1024, "instances": 1},
        attributes={"k": "v"}, tenant_name="t", requestor="zuul",
        slot=0, driver_data={"d": 1}, node_properties={"spot": True},
        comment="c", user_data={"u": 1}, hold_job="job",
        hold_expiration=60)
    node = Node(id="1", **values)
    again = Node.from_dict("1", json.loads(node.to_json()))
    for key, value in values.items():
        assert getattr(again, key) == value, key
    assert again.to_dict() == node.to_dict()
