"""The local Azure, driven by the real azure-identity and azure-mgmt SDKs.

Operations finish when the fake's clock says so: most tests use an injected
manual clock (operation latency 0 unless a test advances it), one uses the
real clock with a short create latency to show that concurrent creates
overlap.  Nothing here patches an SDK.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.core.exceptions import (ClientAuthenticationError,
                                   HttpResponseError, ResourceNotFoundError)
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tools.fakeazure import LocalAzure

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
RG = "nodepool"
LOC = "westus"
VM_PUT = ("PUT /subscriptions/{subscriptionId}/resourceGroups/"
          "{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/"
          "{vmName}")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Clients:
    def __init__(self, az: LocalAzure, **kwargs) -> None:
        cred = az.credential()
        args = az.client_kwargs(**kwargs)
        self.resource = ResourceManagementClient(cred, az.subscription_id,
                                                 **args)
        self.network = NetworkManagementClient(cred, az.subscription_id,
                                               **args)
        self.compute = ComputeManagementClient(cred, az.subscription_id,
                                               **args)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def az(tmp_path, clock):
    azure = LocalAzure(str(tmp_path / "azure"), clock=clock).start()
    azure.ensure_network(RG, "net", location=LOC,
                         subnet_prefix="10.4.0.0/24")
    yield azure
    azure.stop()


@pytest.fixture
def sdk(az):
    return Clients(az)


def subnet_id(az):
    return (f"/subscriptions/{az.subscription_id}/resourceGroups/{RG}/"
            "providers/Microsoft.Network/virtualNetworks/net/subnets/default")


def make_nic(sdk, az, name, public=True, pip_delete="Delete",
             allocation="Static"):
    ipc = {"subnet": {"id": subnet_id(az)}}
    if public:
        sku = "Standard" if allocation == "Static" else "Basic"
        pip = sdk.network.public_ip_addresses.begin_create_or_update(
            RG, f"{name}-pip", {"location": LOC, "sku": {"name": sku},
                                "properties": {
                                    "publicIPAllocationMethod": allocation,
                                    "deleteOption": pip_delete}}).result()
        ipc["publicIPAddress"] = {"id": pip.id}
    return sdk.network.network_interfaces.begin_create_or_update(
        RG, f"{name}-nic", {"location": LOC, "properties": {
            "ipConfigurations": [{"name": "ipconfig1",
                                  "properties": ipc}]}}).result()


def vm_body(nic_id, size="Standard_B2s", delete="Delete", image=None):
    return {
        "location": LOC, "tags": {"nodepool_node_id": "0000001"},
        "properties": {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": image or {
                    "publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                    "sku": "server", "version": "latest"},
                "osDisk": {"createOption": "FromImage",
                           "deleteOption": delete,
                           "managedDisk": {
                               "storageAccountType": "Standard_LRS"}}},
            "osProfile": {
                "computerName": "np0000001", "adminUsername": "zuul",
                "customData": base64.b64encode(b"#cloud-config\n").decode(),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{
                        "path": "/home/zuul/.ssh/authorized_keys",
                        "keyData": "ssh-ed25519 AAAAC3Nza zuul"}]}}},
            "networkProfile": {"networkInterfaces": [{
                "id": nic_id, "properties": {"deleteOption": delete}}]},
            "userData": base64.b64encode(b"user data").decode()}}


def create_vm(sdk, az, name, **kwargs):
    nic = make_nic(sdk, az, name)
    return sdk.compute.virtual_machines.begin_create_or_update(
        RG, name, vm_body(nic.id, **kwargs)).result()


# -- identity -----------------------------------------------------------------

def test_client_secret_credential_and_bad_secret(az):
    token = az.credential().get_token(az.base_url + "/.default")
    assert token.token and token.expires_on > time.time()
    bad = ClientSecretCredential(az.tenant_id, az.client_id, "wrong",
                                 authority=az.base_url,
                                 disable_instance_discovery=True,
                                 connection_verify=az.ca_path)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        bad.get_token(az.base_url + "/.default")


def test_arm_refuses_missing_and_expired_tokens(az, sdk):
    url = (f"{az.base_url}/subscriptions/{az.subscription_id}/resourcegroups"
           "?api-version=2022-09-01")
    reply = requests.get(url, verify=az.ca_path, timeout=10)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "AuthenticationFailed"
    assert list(sdk.resource.resource_groups.list())
    az.expire_tokens()
    with pytest.raises(ClientAuthenticationError):
        list(sdk.resource.resource_groups.list())


def test_auth_file_is_enough_to_reach_arm(az, tmp_path):
    path = az.write_auth_file(str(tmp_path / "auth.json"))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as f:
        auth = json.load(f)
    cred = ClientSecretCredential(
        auth["tenantId"], auth["clientId"], auth["clientSecret"],
        authority=auth["activeDirectoryEndpointUrl"],
        disable_instance_discovery=True, connection_verify=az.ca_path)
    endpoint = auth["resourceManagerEndpointUrl"]
    client = ResourceManagementClient(
        cred, auth["subscriptionId"], base_url=endpoint,
        credential_scopes=[endpoint + ".default"],
        connection_verify=az.ca_path)
    assert [g.name for g in client.resource_groups.list()] == [RG]


# -- resource groups and networks ---------------------------------------------

def test_resource_group_lifecycle(sdk, az):
    groups = sdk.resource.resource_groups
    created = groups.create_or_update("other", {"location": "East US",
                                                "tags": {"a": "1"}})
    assert created.location == "eastus"
    assert created.properties.provisioning_state == "Succeeded"
    assert groups.check_existence("other") is True
    make_nic(sdk, az, "inrg")          # something to delete with RG
    groups.begin_delete(RG).result()
    assert groups.check_existence(RG) is False
    with pytest.raises(ResourceNotFoundError) as err:
        groups.get(RG)
    assert err.value.error.code == "ResourceGroupNotFound"
    assert "networkInterfaces" not in az.resources()
    assert [g.name for g in groups.list()] == ["other"]


def test_nic_references_are_checked(sdk, az):
    with pytest.raises(HttpResponseError) as err:
        sdk.network.network_interfaces.begin_create_or_update(
            RG, "bad", {"location": LOC, "properties": {"ipConfigurations": [
                {"name": "c", "properties": {"subnet": {
                    "id": subnet_id(az) + "x"}}}]}}).result()
    assert err.value.error.code == "InvalidResourceReference"
    nic = make_nic(sdk, az, "a")
    ip = nic.properties.ip_configurations[0].properties
    assert ip.private_ip_address == "10.4.0.4"
    pip_id = ip.public_ip_address.id
    with pytest.raises(HttpResponseError) as err:
        sdk.network.public_ip_addresses.begin_delete(RG, "a-pip").result()
    assert err.value.error.code == "PublicIPAddressCannotBeDeleted"
    pip = sdk.network.public_ip_addresses.get(RG, "a-pip")
    assert pip.id == pip_id and pip.properties.ip_address.startswith("198.1")


# -- virtual machines ---------------------------------------------------------

def test_vm_create_get_list(sdk, az):
    vm = create_vm(sdk, az, "np1")
    assert vm.properties.provisioning_state == "Succeeded"
    assert vm.tags == {"nodepool_node_id": "0000001"}
    got = sdk.compute.virtual_machines.get(RG, "np1", expand="instanceView")
    codes = [s.code for s in got.properties.instance_view.statuses]
    assert codes == ["ProvisioningState/succeeded", "PowerState/running"]
    assert got.properties.os_profile.custom_data is None   # ARM hides it
    stored = az.resources()["virtualMachines"][0]["properties"]
    assert base64.b64decode(stored["osProfile"]["customData"]) == \
        b"#cloud-config\n"
    user = sdk.compute.virtual_machines.get(RG, "np1", expand="userData")
    assert base64.b64decode(user.properties.user_data) == b"user data"
    assert [v.name for v in sdk.compute.virtual_machines.list(RG)] == ["np1"]
    assert [v.name for v in sdk.compute.virtual_machines.list_all()] == \
        ["np1"]
    nic = sdk.network.network_interfaces.get(RG, "np1-nic")
    assert nic.properties.virtual_machine.id == vm.id
    disk_id = vm.properties.storage_profile.os_disk.managed_disk.id
    disk = sdk.compute.disks.get(RG, disk_id.rsplit("/", 1)[1])
    assert disk.managed_by == vm.id


def test_vm_create_is_checked(sdk, az):
    nic = make_nic(sdk, az, "chk", public=False)
    vms = sdk.compute.virtual_machines
    bad_size = vm_body(nic.id, size="Standard_Nope")
    bad_key = vm_body(nic.id)
    bad_key["properties"]["osProfile"]["linuxConfiguration"]["ssh"][
        "publicKeys"][0]["path"] = "/root/.ssh/authorized_keys"
    bad_image = vm_body(nic.id, image={"id": f"/subscriptions/"
                        f"{az.subscription_id}/resourceGroups/{RG}/providers"
                        "/Microsoft.Compute/images/missing"})
    for body, status, code in ((bad_size, 400, "InvalidParameter"),
                               (bad_key, 400, "InvalidParameter"),
                               (bad_image, 404, "NotFound")):
        with pytest.raises(HttpResponseError) as err:
            vms.begin_create_or_update(RG, "chk", body).result()
        assert (err.value.status_code, err.value.error.code) == (status, code)
    assert "virtualMachines" not in az.resources()


def test_vm_delete_cascades_per_delete_option(sdk, az):
    keep = make_nic(sdk, az, "keep", pip_delete="Detach")
    vms = sdk.compute.virtual_machines
    vms.begin_create_or_update(RG, "keep",
                               vm_body(keep.id, delete="Detach")).result()
    create_vm(sdk, az, "gone")
    with pytest.raises(HttpResponseError) as err:
        sdk.network.network_interfaces.begin_delete(RG, "gone-nic").result()
    assert err.value.error.code == "NicInUse"
    vms.begin_delete(RG, "gone").result()
    vms.begin_delete(RG, "keep").result()
    left = az.resources()
    assert "virtualMachines" not in left
    assert [n["name"] for n in left["networkInterfaces"]] == ["keep-nic"]
    assert [p["name"] for p in left["publicIPAddresses"]] == ["keep-pip"]
    assert [d["properties"]["diskState"] for d in left["disks"]] == \
        ["Unattached"]
    # Detached leftovers can now be deleted in order, as a cleanup would.
    sdk.network.network_interfaces.begin_delete(RG, "keep-nic").result()
    sdk.network.public_ip_addresses.begin_delete(RG, "keep-pip").result()
    sdk.compute.disks.begin_delete(RG, left["disks"][0]["name"]).result()
    assert set(az.resources()) == {"resourceGroups", "virtualNetworks"}
    vms.begin_delete(RG, "gone").result()   # idempotent: 204


def test_dynamic_public_ip_gets_fixed_loopback_address(tmp_path, clock):
    with LocalAzure(str(tmp_path), clock=clock,
                    fixed_public_ipv4="127.0.0.1") as az:
        az.ensure_network(RG, "net", location=LOC)
        sdk = Clients(az)
        nic = make_nic(sdk, az, "dyn", allocation="Dynamic")
        pip = sdk.network.public_ip_addresses.get(RG, "dyn-pip")
        assert pip.properties.ip_address is None
        sdk.compute.virtual_machines.begin_create_or_update(
            RG, "dyn", vm_body(nic.id)).result()
        pip = sdk.network.public_ip_addresses.get(RG, "dyn-pip")
        assert pip.properties.ip_address == "127.0.0.1"


def test_create_latency_follows_the_clock(sdk, az, clock):
    az.configure(vm_create_latency=30.0)
    nic = make_nic(sdk, az, "slow")
    poller = sdk.compute.virtual_machines.begin_create_or_update(
        RG, "slow", vm_body(nic.id), polling=False)
    assert poller.result().properties.provisioning_state == "Creating"
    vm = sdk.compute.virtual_machines.get(RG, "slow")
    assert vm.properties.provisioning_state == "Creating"
    clock.advance(30.0)
    vm = sdk.compute.virtual_machines.get(RG, "slow", expand="instanceView")
    assert vm.properties.provisioning_state == "Succeeded"


def test_concurrent_creates_overlap(tmp_path):
    latency = 0.6
    with LocalAzure(str(tmp_path), vm_create_latency=latency) as az:
        az.ensure_network(RG, "net", location=LOC)
        sdk = Clients(az, polling_interval=0.05)
        nics = [make_nic(sdk, az, f"c{i}", public=False) for i in range(3)]
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            vms = list(pool.map(
                lambda i: sdk.compute.virtual_machines.begin_create_or_update(
                    RG, f"c{i}", vm_body(nics[i].id)).result(), range(3)))
        elapsed = time.monotonic() - started
        assert {v.properties.provisioning_state for v in vms} == \
            {"Succeeded"}
        # Serial creates would take at least 3 * latency.
        assert latency <= elapsed < 3 * latency
        assert az.stats()["vm_creates_in_flight_max"] == 3


# -- injected failures --------------------------------------------------------

def test_failed_create_operation(sdk, az):
    az.configure(fail_vm_create_next=1,
                 fail_vm_create_code="OSProvisioningTimedOut")
    with pytest.raises(HttpResponseError) as err:
        create_vm(sdk, az, "bad")
    assert err.value.error.code == "OSProvisioningTimedOut"
    vm = sdk.compute.virtual_machines.get(RG, "bad", expand="instanceView")
    assert vm.properties.provisioning_state == "Failed"
    assert vm.properties.instance_view.statuses[0].code == \
        "ProvisioningState/failed/OSProvisioningTimedOut"
    sdk.compute.virtual_machines.begin_delete(RG, "bad").result()
    assert create_vm(sdk, az, "good").properties.provisioning_state == \
        "Succeeded"


def test_quota_errors(sdk, az):
    az.configure(quota_limits={"standardDSv3Family": 3})
    create_vm(sdk, az, "d1", size="Standard_D2s_v3")
    with pytest.raises(HttpResponseError) as err:
        create_vm(sdk, az, "d2", size="Standard_D2s_v3")
    assert err.value.status_code == 409
    assert err.value.error.code == "OperationNotAllowed"
    assert "exceeding approved standardDSv3Family Cores quota" in \
        err.value.error.message
    usages = {u.name.value: (u.current_value, u.limit)
              for u in sdk.compute.usage.list(LOC)}
    assert usages["standardDSv3Family"] == (2, 3)
    assert usages["cores"][0] == 2 and usages["virtualMachines"][0] == 1
    az.configure(quota_error_next=1)
    with pytest.raises(HttpResponseError, match="exceeding approved"):
        create_vm(sdk, az, "b1", size="Standard_B1s")
    assert create_vm(sdk, az, "b2", size="Standard_B1s")


def test_throttling_surfaces_retry_after(az):
    strict = Clients(az, retry_total=0)
    az.configure(throttle_next=1, retry_after=7)
    with pytest.raises(HttpResponseError) as err:
        strict.compute.virtual_machines.list(RG).next()
    assert err.value.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert az.stats()["throttled"] == 1


def test_throttling_retry_after_is_honoured(az):
    patient = Clients(az, retry_total=2)
    az.configure(throttle_next=1, retry_after=0.5,
                 throttle_match="GET */virtualMachines")
    list(patient.resource.resource_groups.list())    # not matched
    started = time.monotonic()
    assert list(patient.compute.virtual_machines.list(RG)) == []
    assert time.monotonic() - started >= 0.5
    stats = az.stats()
    assert stats["throttled"] == 1
    key = ("GET /subscriptions/{subscriptionId}/resourceGroups/"
           "{resourceGroupName}/providers/Microsoft.Compute/virtualMachines")
    assert stats["calls"][key] == 2


def test_rate_throttle(az, clock):
    strict = Clients(az, retry_total=0)

    def attempts(n):
        outcomes = []
        for _ in range(n):
            try:
                strict.resource.resource_groups.get(RG)
                outcomes.append(200)
            except HttpResponseError as exc:
                outcomes.append(exc.status_code)
        return outcomes

    az.configure(throttle_rate=3)
    assert attempts(5) == [200, 200, 200, 429, 429]
    clock.advance(1.0)     # the one-second window has passed
    assert attempts(1) == [200]


def test_server_errors_are_retried_or_surface(az):
    az.configure(server_error_next=1)
    assert Clients(az).resource.resource_groups.get(RG).name == RG
    az.configure(server_error_next=1, server_error_status=503)
    with pytest.raises(HttpResponseError) as err:
        Clients(az, retry_total=0).resource.resource_groups.get(RG)
    assert err.value.status_code == 503
    assert az.stats()["server_errors"] == 2


# -- catalog ------------------------------------------------------------------

def test_skus_and_gallery_images(sdk, az):
    skus = {s.name: s for s in sdk.compute.resource_skus.list(
        filter=f"location eq '{LOC}'")}
    caps = {c.name: c.value for c in skus["Standard_D4s_v3"].capabilities}
    assert (caps["vCPUs"], caps["MemoryGB"]) == ("4", "16")
    assert skus["Standard_D4s_v3"].family == "standardDSv3Family"
    az.add_gallery_image_version("gal-unique", "ubuntu", "1.0.0")
    image_id = az.add_gallery_image_version("gal-unique", "ubuntu", "1.2.0")
    versions = sdk.compute.shared_gallery_image_versions.list(
        LOC, "gal-unique", "ubuntu")
    assert sorted(v.name for v in versions) == ["1.0.0", "1.2.0"]
    nic = make_nic(sdk, az, "gal", public=False)
    vm = sdk.compute.virtual_machines.begin_create_or_update(
        RG, "gal", vm_body(nic.id, image={
            "sharedGalleryImageId": image_id})).result()
    assert vm.properties.provisioning_state == "Succeeded"
    managed = az.add_image("images", "custom", LOC)
    assert [i.id for i in sdk.compute.images.list()] == [managed]


# -- control surface ----------------------------------------------------------

def test_control_endpoints(az):
    url = az.base_url + "/_fake"
    reply = requests.post(url + "/config", json={"vm_create_latency": 2.5},
                          verify=az.ca_path, timeout=10)
    assert reply.json()["vm_create_latency"] == 2.5
    assert az.behaviour.vm_create_latency == 2.5
    bad = requests.post(url + "/config", json={"no_such_knob": 1},
                        verify=az.ca_path, timeout=10)
    assert bad.status_code == 400
    stats = requests.get(url + "/stats", verify=az.ca_path, timeout=10)
    assert stats.json()["total"] == 0     # control calls are not counted
    resources = requests.get(url + "/resources", verify=az.ca_path,
                             timeout=10).json()
    assert [g["name"] for g in resources["resourceGroups"]] == [RG]


def test_command_line_runs_until_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.fakeazure", "--workdir",
         str(tmp_path), "--set", "vm_create_latency=1.5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        with open(info["auth_path"]) as f:
            auth = json.load(f)
        reply = requests.get(
            f"{info['base_url']}/{auth['tenantId']}/v2.0/.well-known/"
            "openid-configuration", verify=info["ca_path"], timeout=10)
        assert reply.json()["token_endpoint"].startswith(info["base_url"])
        config = requests.get(info["base_url"] + "/_fake/config",
                              verify=info["ca_path"], timeout=10).json()
        assert config["vm_create_latency"] == 1.5
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
