"""Server records: status table, addresses, floating-IP need, Instance."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.driver.instance import InstanceState
from nodepool.driver.openstack import servers

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


def test_addresses_floating_external_private_v6():
    record = server(addresses={
        "private": [addr("10.0.0.5"), addr("172.24.0.9", "floating"),
                    addr("fe80::1", version=6),
                    addr("2001:db8::5", version=6)],
        "public": [addr("203.0.113.7")]})
    assert servers.addresses(record, {"public"}) == (
        "172.24.0.9", "10.0.0.5", "2001:db8::5")
    # without knowing "public" is external, only the floating one is public
    no_fip = server(addresses={"public": [addr("203.0.113.7")]})
    assert servers.addresses(no_fip, set())[0] is None
    assert servers.addresses(no_fip, {"public"})[0] == "203.0.113.7"


def test_global_fixed_address_is_public_unless_marked_internal():
    record = server(addresses={"provider": [addr("93.184.216.34")]})
    assert servers.addresses(record)[0] == "93.184.216.34"
    assert not servers.needs_floating_ip(record)
    assert servers.addresses(record, set(), {"provider"}) == (
        None, "93.184.216.34", None)
    assert servers.needs_floating_ip(record, set(), {"provider"})


def test_access_ipv4_counts_only_when_global():
    loop = server(accessIPv4="127.0.0.1")
    assert servers.addresses(loop)[0] is None
    glob = server(accessIPv4="8.8.8.8")
    assert servers.addresses(glob)[0] == "8.8.8.8"


def test_needs_floating_ip():
    assert servers.needs_floating_ip(server())
    assert not servers.needs_floating_ip(server(addresses={
        "private": [addr("10.0.0.5"), addr("172.24.0.9", "floating")]}))
    assert not servers.needs_floating_ip(server(addresses={
        "private": [addr("2001:db8::5", version=6)]}))
    assert servers.floating_addresses(server(addresses={
        "private": [addr("172.24.0.9", "floating")]})) == ["172.24.0.9"]


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
    assert inst.interface_ip == inst.private_ipv4 == "10.0.0.5"
    assert inst.public_ipv4 is None
    assert inst.az == "zone-a" and inst.region == "R1" and inst.cloud == "c"
    assert inst.node_id == "0000000001" and inst.provider_name == "os"
    assert inst.host_id == "h1"
    forced = servers.to_instance(server(), public_ipv4="172.24.0.3",
                                 resources={"instances": 1})
    assert forced.interface_ip == "172.24.0.3"
    assert forced.resources == {"instances": 1}
