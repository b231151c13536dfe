"""Leak cleanup: our tag + unknown node → deleted on the second pass only."""

from __future__ import annotations

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from tests.functional.azure.conftest import KEY, LOCATION, RG
from tests.functional.azure.helpers import adapter_of, fulfil, wait_gone
from tools.fakeazure.store import resource_id, utcnow_iso

OURS = {"nodepool_provider_name": "azure", "nodepool_pool_name": "main"}


class Sdk:
    """The test's own clients, as another tool would use them."""

    def __init__(self, local):
        cred = local.credential()
        kwargs = local.client_kwargs()
        self.local = local
        self.compute = ComputeManagementClient(cred, local.subscription_id,
                                               **kwargs)
        self.network = NetworkManagementClient(cred, local.subscription_id,
                                               **kwargs)

    def subnet(self) -> str:
        return (f"/subscriptions/{self.local.subscription_id}/resourceGroups/"
                f"{RG}/providers/Microsoft.Network/virtualNetworks/net/"
                "subnets/default")

    def pip(self, name, tags):
        return self.network.public_ip_addresses.begin_create_or_update(
            RG, name, {"location": LOCATION, "tags": tags,
                       "sku": {"name": "Standard"},
                       "properties": {"publicIPAllocationMethod": "Static"}}
        ).result()

    def nic(self, name, tags):
        return self.network.network_interfaces.begin_create_or_update(
            RG, name, {"location": LOCATION, "tags": tags, "properties": {
                "ipConfigurations": [{"name": "ipv4", "properties": {
                    "subnet": {"id": self.subnet()}}}]}}).result()

    def vm(self, name, tags):
        nic = self.nic(f"{name}-nic", tags)
        return self.compute.virtual_machines.begin_create_or_update(
            RG, name, {"location": LOCATION, "tags": tags, "properties": {
                "hardwareProfile": {"vmSize": "Standard_B1s"},
                "storageProfile": {
                    "imageReference": {"publisher": "Canonical",
                                       "offer": "o", "sku": "s",
                                       "version": "latest"},
                    "osDisk": {"createOption": "FromImage",
                               "deleteOption": "Delete"}},
                "osProfile": {"adminUsername": "zuul", "linuxConfiguration": {
                    "ssh": {"publicKeys": [{
                        "path": "/home/zuul/.ssh/authorized_keys",
                        "keyData": KEY}]}}},
                "networkProfile": {"networkInterfaces": [{
                    "id": nic.id,
                    "properties": {"deleteOption": "Delete"}}]}}}).result()

    def disk(self, name, tags):
        """ARM has no PUT for bare disks in the fake: seed it directly."""
        local = self.local
        rid = resource_id(local.subscription_id, RG, "Microsoft.Compute",
                          "disks", name)
        with local.store.lock:
            local.store.put({
                "id": rid, "name": name, "type": "Microsoft.Compute/disks",
                "location": LOCATION, "tags": dict(tags),
                "sku": {"name": "Standard_LRS", "tier": "Standard"},
                "properties": {"diskSizeGB": 10, "diskState": "Unattached",
                               "osType": "Linux", "timeCreated": utcnow_iso(),
                               "provisioningState": "Succeeded"}})


def test_leaked_vms_nics_pips_and_disks(env, azure):
    env.write_config([azure.provider()])
    launcher = env.start_launcher()
    _, req = fulfil(env, ["small"])
    live = f"np{req['nodes'][0]}"

    sdk = Sdk(azure.local)
    unknown = {**OURS, "nodepool_node_id": "9999999999"}
    sdk.vm("leak-vm", unknown)
    sdk.vm("other-vm", {"nodepool_provider_name": "other",
                        "nodepool_node_id": "9999999998"})
    sdk.vm("untagged-vm", {})
    sdk.nic("leak-nic", unknown)
    sdk.pip("leak-pip", unknown)
    sdk.disk("leak-disk", unknown)
    sdk.nic("other-nic", {"nodepool_provider_name": "other"})
    sdk.disk("other-disk", {})
    everything = {kind: azure.names(kind) for kind in (
        "virtualMachines", "networkInterfaces", "publicIPAddresses",
        "disks")}

    cleanup = launcher.cleanup_worker
    adapter = adapter_of(launcher)
    adapter.forget_listings()        # listings are cached for 2 s
    cleanup.run_once()
    # First pass: only suspects, nothing deleted.
    for kind, names in everything.items():
        assert azure.names(kind) == names, kind
    assert azure.calls("DELETE") == 0

    adapter.forget_listings()
    cleanup.run_once()
    wait_gone(azure, "virtualMachines", ["leak-vm"])
    wait_gone(azure, "networkInterfaces", ["leak-nic", "leak-vm-nic"])
    wait_gone(azure, "publicIPAddresses", ["leak-pip"])
    wait_gone(azure, "disks", ["leak-disk"])
    assert {live, "other-vm", "untagged-vm"} <= \
        azure.names("virtualMachines")
    assert {"other-nic", f"{live}-nic"} <= azure.names("networkInterfaces")
    assert f"{live}-pip4" in azure.names("publicIPAddresses")
    assert "other-disk" in azure.names("disks")
    assert env.zuul.get_node(req["nodes"][0])["state"] == "ready"
