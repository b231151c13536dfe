"""Server records: status table, addresses, floating-IP need, Instance."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.driver.instance import InstanceState
from nodepool.driver.openstack import servers
from nodepool.driver.openstack.addresses import AddressRules

from tests.unit.openstack.helpers import server


def addr(ip, kind="fixed", version=4):
    return {"version": version, "addr": ip, "OS-EXT-IPS:type": kind}


def test_status_table_and_deleting_task():
    assert servers.server_state(server(status="BUILD")) is \
        InstanceState.PENDING
    assert servers.server_state(server(status="active")) is \
        InstanceState.RUNNING
    assert servers.server_state(server(status="ERROR")) is \
        InstanceState.ERROR
    assert servers.server_state(server(status="SHUTOFF")) is \
        InstanceState.STOPPING
    assert servers.server_state(server(status="ACTIVE", **{
        "OS-EXT-STS:task_state": "deleting"})) is InstanceState.STOPPING
    assert servers.server_state(server(status="MIGRATING")) is \
        InstanceState.UNKNOWN


def test_resources_from_embedded_flavor_or_lookup():
    assert servers.server_resources(server()) == {
        "instances": 1, "cores": 1, "ram": 2048}
    old = server(flavor={"id": "3"},
                 **{"os-extended-volumes:volumes_attached": [{"id": "v"}]})
    assert servers.server_resources(old) is None
    lookup = {"3": SimpleNamespace(vcpus=2, ram=4096)}.get
    assert servers.server_resources(old, lookup) == {
        "instances": 1, "cores": 2, "ram": 4096, "volumes": 1}


def test_to_instance():
    inst = servers.to_instance(server(), region="R1", cloud="c")
    assert inst.external_id == "srv-1"
    assert inst.state is InstanceState.RUNNING
    assert inst.private_ipv4 == "10.0.0.5"
    # no public address: upstream's interface_ip and public fields are ""
    assert inst.interface_ip == inst.public_ipv4 == inst.public_ipv6 == ""
    assert inst.az == "zone-a" and inst.region == "R1" and inst.cloud == "c"
    assert inst.node_id == "0000000001" and inst.provider_name == "os"
    assert inst.host_id == "h1"
    assert inst.driver_data is None
    forced = servers.to_instance(server(), public_ipv4="172.24.0.3",
                                 resources={"instances": 1})
    assert forced.interface_ip == forced.public_ipv4 == "172.24.0.3"
    assert forced.private_ipv4 == "10.0.0.5"
    assert forced.resources == {"instances": 1}


def test_to_instance_private_falls_back_to_public_and_keeps_raw_values():
    record = server(id=42, hostId="", addresses={
        "public": [addr("172.24.0.11")]},
        **{"OS-EXT-AZ:availability_zone": ""})
    rules = AddressRules(external=("public",))
    inst = servers.to_instance(record, rules=rules)
    assert inst.external_id == "42"
    assert inst.public_ipv4 == inst.private_ipv4 == "172.24.0.11"
    assert inst.host_id == "" and inst.az == ""
