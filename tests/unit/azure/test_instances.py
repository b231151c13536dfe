"""A VM record (ARM wire format) → the Instance a node is written from, by
upstream Nodepool 11's rules (see tests/functional/azure/
test_parity_fields.py for the same against the local Azure)."""

from __future__ import annotations

from nodepool.driver.azure.adapter import launched_instance, vm_instance
from nodepool.driver.azure.create import private_address
from nodepool.driver.instance import InstanceState

COST = {"instances": 1, "cores": 2, "ram": 4096}


def vm(**extra):
    record = {"name": "np0000000007", "location": "eastus",
              "tags": {"nodepool_node_id": "0000000007"},
              "properties": {"provisioningState": "Succeeded",
                             "hardwareProfile": {"vmSize": "Standard_B2s"}}}
    record.update(extra)
    return record


def nic(*configs):
    return {"properties": {"ipConfigurations": [
        {"properties": {"privateIPAddressVersion": version,
                        "privateIPAddress": address}}
        for version, address in configs]}}


def pip(address):
    return {"properties": {"ipAddress": address}}


def test_identity_region_and_zone_come_from_the_vm():
    inst = vm_instance(vm(), COST, "westus")
    assert inst.external_id == "np0000000007"
    assert (inst.cloud, inst.region, inst.az) == ("Azure", "eastus", "")
    assert inst.state is InstanceState.RUNNING
    assert inst.resources == COST and inst.node_id == "0000000007"
    assert vm_instance(vm(zones=["2", "3"]), COST, "westus").az == "2"
    # A record without a location: the provider's.
    record = vm()
    del record["location"]
    assert vm_instance(record, COST, "westus").region == "westus"


def test_addresses_and_interface_ip_in_upstreams_order():
    dual = nic(("IPv4", "10.0.0.4"), ("IPv6", "fd00::4"))
    inst = launched_instance(vm(), dual, {4: pip("20.1.2.3"),
                                          6: pip("2603::1")}, COST, "w")
    assert (inst.public_ipv4, inst.private_ipv4, inst.public_ipv6) == \
        ("20.1.2.3", "10.0.0.4", "2603::1")
    assert inst.interface_ip == "20.1.2.3"
    inst = launched_instance(vm(), dual, {6: pip("2603::1")}, COST, "w")
    assert inst.interface_ip == "2603::1"
    inst = launched_instance(vm(), dual, {}, COST, "w")
    assert inst.interface_ip == "10.0.0.4" and inst.public_ipv4 is None
    # Only a private IPv6 (a VM we did not create: ours always have IPv4).
    inst = launched_instance(vm(), nic(("IPv6", "fd00::9")), {}, COST, "w")
    assert inst.interface_ip == "fd00::9" and inst.private_ipv4 is None


def test_private_address_is_the_last_configuration_of_its_version():
    two = nic(("IPv4", "10.0.0.4"), ("IPv6", "fd00::4"), ("IPv4", "10.0.0.5"))
    assert private_address(two, 4) == "10.0.0.5"
    assert private_address(two, 6) == "fd00::4"
    assert private_address(None, 4) is None
    # An ipConfiguration that names no version is IPv4.
    bare = {"properties": {"ipConfigurations": [
        {"properties": {"privateIPAddress": "10.0.0.6"}}]}}
    assert private_address(bare, 4) == "10.0.0.6"
