"""Microsoft.Compute virtual machines.

A VM PUT is checked the way Azure checks it, then answered 201 with
``provisioningState: Creating`` and an ``Azure-AsyncOperation`` monitor.
After ``vm_create_latency`` seconds the operation ends Succeeded (the VM is
running, dynamic public IPs get addresses) or, when a failure was injected,
Failed with that error code; the VM then stays in ``provisioningState:
Failed`` holding its NIC, disk and quota until someone deletes it, as in
Azure.

Checks, in Azure's order and with Azure's codes:

- missing group 404 ResourceGroupNotFound; unknown region 400
  LocationNotAvailableForResourceType; unknown size 400 InvalidParameter;
- image: a managed image id that does not exist 404 NotFound, an unknown
  shared/community gallery image 404 GalleryImageNotFound, a marketplace
  reference missing publisher/offer/sku 400 InvalidParameter;
- osProfile: adminUsername required; SSH keys only at
  ``/home/<user>/.ssh/authorized_keys``; customData/userData base64 and at
  most 87380 characters; some way to log in must be enabled;
- NICs must exist (404 NotFound) and not belong to another VM (400
  NicInUse);
- quota (cores, the VM family's cores, VM count) or an injected quota error:
  409 OperationNotAllowed "... exceeding approved ... quota ...".

DELETE answers 202 and, after ``vm_delete_latency``, removes the VM and
cascades per ``deleteOption``: NICs marked Delete go (and with them public
IPs whose own deleteOption is Delete); the OS disk goes if its deleteOption
is Delete, else it is left Unattached.  Deleting a VM that is still being
created preempts the create (its operation ends Canceled).
"""

from __future__ import annotations

import base64
import binascii
import copy
import uuid
from typing import Optional

from . import arm, disks, network
from .catalog import usage
from .routes import Call, Reply, Router
from .store import ArmError, Operation, utcnow_iso

CMP = "Microsoft.Compute"
VMS = arm.RG + "/providers/Microsoft.Compute/virtualMachines"
T_VM = "Microsoft.Compute/virtualMachines"
MAX_CUSTOM_DATA = 87380  # base64 characters; 64 KiB decoded


def invalid(message: str, target: Optional[str] = None) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target)


def _base64(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        value = None
    if value is None or len(value) > MAX_CUSTOM_DATA:
        raise invalid(f"{what} must be in Base64 encoding and with a maximum"
                      f" length of {MAX_CUSTOM_DATA} characters.", what)
    return value


# -- checks -------------------------------------------------------------------

def _size(call: Call, props: dict) -> tuple[str, tuple]:
    name = (props.get("hardwareProfile") or {}).get("vmSize") or ""
    spec = call.azure.catalog.size(name)
    if spec is None:
        raise invalid(f"The value {name} provided for the VM size is not "
                      "valid.", "vmSize")
    return name, spec


def _image_reference(call: Call, props: dict, location: str) -> dict:
    ref = dict((props.get("storageProfile") or {}).get("imageReference")
               or {})
    catalog = call.azure.catalog
    if ref.get("id"):
        if call.azure.store.get(ref["id"]) is None:
            raise ArmError(404, "NotFound",
                           f"The Image '{ref['id']}' cannot be found in "
                           f"'{location}' region.")
    elif ref.get("sharedGalleryImageId"):
        catalog.resolve_gallery_image("shared", ref["sharedGalleryImageId"])
    elif ref.get("communityGalleryImageId"):
        catalog.resolve_gallery_image("community",
                                      ref["communityGalleryImageId"])
    else:
        for key in ("publisher", "offer", "sku"):
            if not ref.get(key):
                raise invalid(f"Required parameter 'imageReference.{key}' "
                              "is missing (null).", f"imageReference.{key}")
        ref.setdefault("version", "latest")
        ref["exactVersion"] = ref["version"] if ref["version"] != "latest" \
            else "1.0.20240101"
    return ref


def _os_profile(props: dict, vm_name: str) -> dict:
    raw = props.get("osProfile") or {}
    user = raw.get("adminUsername")
    if not user:
        raise invalid("Required parameter 'adminUsername' is missing (null).",
                      "adminUsername")
    linux = copy.deepcopy(raw.get("linuxConfiguration") or {})
    keys = (linux.get("ssh") or {}).get("publicKeys") or []
    for key in keys:
        if key.get("path") != f"/home/{user}/.ssh/authorized_keys":
            raise invalid("Destination path for SSH public keys is currently "
                          "limited to its default value /home/"
                          f"{user}/.ssh/authorized_keys due to a known issue "
                          "in Linux provisioning agent.",
                          "linuxConfiguration.ssh.publicKeys.path")
        if not str(key.get("keyData", "")).startswith(("ssh-", "ecdsa-")):
            raise invalid("The value of parameter linuxConfiguration.ssh."
                          "publicKeys.keyData is invalid.",
                          "linuxConfiguration.ssh.publicKeys.keyData")
    no_password = linux.get("disablePasswordAuthentication", False)
    if (no_password or not raw.get("adminPassword")) and not keys:
        raise invalid("Authentication using either SSH or by user name and "
                      "password must be enabled in Linux profile.",
                      "linuxConfiguration")
    profile = {"computerName": raw.get("computerName") or vm_name,
               "adminUsername": user, "linuxConfiguration": linux,
               "secrets": [], "allowExtensionOperations": True,
               "requireGuestProvisionSignal": True}
    if raw.get("adminPassword"):
        profile["adminPassword"] = raw["adminPassword"]
    custom = _base64(raw.get("customData"), "customData")
    if custom is not None:
        profile["customData"] = custom
    return profile


def _nics(call: Call, props: dict, vm_id: str) -> list[tuple[dict, dict]]:
    net = props.get("networkProfile") or {}
    if net.get("networkInterfaceConfigurations"):
        raise invalid("networkInterfaceConfigurations are not implemented by "
                      "the local fake; create the NIC and reference it.",
                      "networkProfile")
    refs = net.get("networkInterfaces") or []
    if not refs:
        raise invalid("Required parameter 'networkProfile' is missing (null).",
                      "networkProfile")
    out = []
    for i, ref in enumerate(refs):
        nic = call.azure.store.get(ref.get("id", ""))
        if nic is None:
            raise ArmError(404, "NotFound",
                           f"Resource {ref.get('id')} not found.")
        owner = nic["properties"].get("virtualMachine")
        if owner and owner["id"].lower() != vm_id.lower():
            raise ArmError(400, "NicInUse",
                           f"Network Interface {nic['id']} is used by existing"
                           f" resource {owner['id']}.")
        ref_props = ref.get("properties") or {}
        out.append((nic, {"id": nic["id"], "properties": {
            "primary": ref_props.get("primary", i == 0),
            "deleteOption": ref_props.get("deleteOption", "Detach")}}))
    return out


def _quota_error(name: str, location: str, limit: int, current: int,
                 need: int) -> ArmError:
    label = {"cores": "Total Regional Cores",
             "virtualMachines": "Total Regional Virtual Machines"
             }.get(name, f"{name} Cores")
    return ArmError(
        409, "OperationNotAllowed",
        f"Operation could not be completed as it results in exceeding "
        f"approved {label} quota. Additional details - Deployment Model: "
        f"Resource Manager, Location: {location}, Current Limit: {limit}, "
        f"Current Usage: {current}, Additional Required: {need}, (Minimum) "
        f"New Limit Required: {current + need}. Submit a request for Quota "
        "increase at https://aka.ms/ProdportalCRP by specifying parameters "
        "listed in the 'Details' section for deployment to succeed.")


def _check_quota(call: Call, location: str, spec: tuple) -> None:
    vcpus, _, family = spec
    current = usage(call.azure, location)
    behaviour = call.azure.behaviour
    for name, need in (("cores", vcpus), (family, vcpus),
                       ("virtualMachines", 1)):
        limit = behaviour.quota(name)
        if current.get(name, 0) + need > limit:
            raise _quota_error(name, location, limit, current.get(name, 0),
                               need)
    if call.azure.faults.take_quota_error():
        have = current.get(family, 0)
        raise _quota_error(family, location, have, have, vcpus)


# -- rendering ----------------------------------------------------------------

def instance_view(vm: dict) -> dict:
    props = vm["properties"]
    state = props["provisioningState"]
    failure = vm.get("_failure")
    status = {"code": f"ProvisioningState/{state.lower()}", "level": "Info",
              "displayStatus": f"Provisioning {state.lower()}",
              "time": props.get("timeCreated")}
    if state == "Failed" and failure:
        status.update(code=f"ProvisioningState/failed/{failure['code']}",
                      level="Error", message=failure["message"])
    power = {"Succeeded": "running", "Creating": "starting",
             "Deleting": "deallocating"}.get(state)
    statuses = [status]
    if power:
        statuses.append({"code": f"PowerState/{power}", "level": "Info",
                         "displayStatus": f"VM {power}"})
    os_disk = props["storageProfile"]["osDisk"]
    return {"computerName": props["osProfile"]["computerName"],
            "osName": "ubuntu", "osVersion": "22.04",
            "hyperVGeneration": "V2", "statuses": statuses,
            "disks": [{"name": os_disk["name"], "statuses": [dict(status)]}]}


def render(vm: dict, expand: str = "") -> dict:
    """The GET view: no secrets, userData/instanceView only when expanded."""
    out = {k: copy.deepcopy(v) for k, v in vm.items() if not k.startswith("_")}
    props = out["properties"]
    props["osProfile"].pop("customData", None)
    props["osProfile"].pop("adminPassword", None)
    user_data = props.pop("userData", None)
    expand = expand.lower()
    if "userdata" in expand and user_data is not None:
        props["userData"] = user_data
    if "instanceview" in expand:
        props["instanceView"] = instance_view(vm)
    return out


# -- handlers -----------------------------------------------------------------

def _build(call: Call, rid: str, body: dict, location: str) -> tuple:
    props = body.get("properties") or {}
    size, spec = _size(call, props)
    image_ref = _image_reference(call, props, location)
    os_profile = _os_profile(props, rid.rsplit("/", 1)[1])
    nics = _nics(call, props, rid)
    user_data = _base64(props.get("userData"), "userData")
    _check_quota(call, location, spec)
    vm = {"id": rid, "name": rid.rsplit("/", 1)[1], "type": T_VM,
          "location": location, "tags": arm.tags_of(body),
          "properties": {
              "vmId": str(uuid.uuid4()),
              "hardwareProfile": {"vmSize": size},
              "storageProfile": {"imageReference": image_ref,
                                 "dataDisks": []},
              "osProfile": os_profile,
              "networkProfile": {"networkInterfaces": [r for _, r in nics]},
              "provisioningState": "Creating",
              "timeCreated": utcnow_iso()}}
    for key in ("diagnosticsProfile", "priority", "evictionPolicy",
                "billingProfile", "securityProfile", "additionalCapabilities"):
        if key in props:
            vm["properties"][key] = copy.deepcopy(props[key])
    for key in ("zones", "plan", "identity"):
        if key in body:
            vm[key] = copy.deepcopy(body[key])
    if user_data is not None:
        vm["properties"]["userData"] = user_data
    return vm, [nic for nic, _ in nics]


def _attach(call: Call, vm: dict, nics: list[dict], raw_disk: dict) -> None:
    props = vm["properties"]
    disk = disks.make_os_disk(call.azure, vm, raw_disk,
                              props["storageProfile"]["imageReference"])
    props["storageProfile"]["osDisk"] = {
        "osType": raw_disk.get("osType", "Linux"), "name": disk["name"],
        "createOption": raw_disk.get("createOption", "FromImage"),
        "caching": raw_disk.get("caching", "ReadWrite"),
        "managedDisk": {"storageAccountType": disk["sku"]["name"],
                        "id": disk["id"]},
        "deleteOption": raw_disk.get("deleteOption", "Detach"),
        "diskSizeGB": disk["properties"]["diskSizeGB"]}
    for nic in nics:
        nic["properties"]["virtualMachine"] = {"id": vm["id"]}


def put_vm(call: Call) -> Reply:
    arm.require_group(call)
    azure, store = call.azure, call.azure.store
    body = call.json()
    rid = arm.rid(call, CMP, "virtualMachines", "vmName")
    existing = store.get(rid)
    if existing is not None:
        return _update(call, existing, body)
    if not body.get("location"):
        raise ArmError(400, "LocationRequired",
                       "The location property is required for this "
                       "definition.")
    location = azure.catalog.check_location(body["location"])
    vm, nics = _build(call, rid, body, location)
    store.put(vm)
    raw_disk = ((body.get("properties") or {}).get("storageProfile") or {}
                ).get("osDisk") or {}
    _attach(call, vm, nics, raw_disk)

    def complete(op: Operation) -> None:
        current = store.get(rid)
        if current is None:
            return
        if op.error:
            current["properties"]["provisioningState"] = "Failed"
            current["_failure"] = op.error
            return
        current["properties"]["provisioningState"] = "Succeeded"
        for nic in nics:
            if store.get(nic["id"]) is nic:
                nic["properties"]["macAddress"] = \
                    "00-0D-3A-" + uuid.uuid4().hex[:6].upper()
                network.vm_running(azure, nic)

    op = arm.begin(call, CMP, location, rid, "vm-create",
                   azure.behaviour.vm_create_latency, complete,
                   error=azure.faults.take_vm_failure())
    azure.counters.vm_creates_in_flight_max = max(
        azure.counters.vm_creates_in_flight_max, store.pending("vm-create"))
    return Reply(201, render(vm), arm.lro_headers(call, op, location=False))


def _update(call: Call, vm: dict, body: dict) -> Reply:
    """PUT/PATCH on an existing VM: tags (and userData) only."""
    if vm["properties"]["provisioningState"] == "Deleting":
        raise ArmError(409, "OperationNotAllowed",
                       f"Operation '{call.method}' is not allowed on VM "
                       f"'{vm['name']}' since the VM is marked for deletion.")
    if "tags" in body:
        vm["tags"] = arm.tags_of(body)
    props = body.get("properties") or {}
    if "userData" in props:
        vm["properties"]["userData"] = _base64(props["userData"], "userData")
    op = arm.begin(call, CMP, vm["location"], vm["id"], "update", 0.0,
                   lambda op: None)
    return Reply(200, render(vm), arm.lro_headers(call, op, location=False))


def patch_vm(call: Call) -> Reply:
    arm.require_group(call)
    vm = call.azure.store.require(arm.rid(call, CMP, "virtualMachines",
                                          "vmName"))
    return _update(call, vm, call.json())


def _is_delete(option: Optional[str]) -> bool:
    return str(option or "").lower() == "delete"


def remove_vm(azure, vm: dict) -> None:
    """The VM is gone: cascade or detach its NICs and OS disk."""
    store, props = azure.store, vm["properties"]
    for ref in props["networkProfile"]["networkInterfaces"]:
        nic = store.get(ref["id"])
        if nic is None:
            continue
        nic["properties"].pop("virtualMachine", None)
        nic["properties"].pop("macAddress", None)
        if not _is_delete(ref["properties"].get("deleteOption")):
            continue
        pips = [store.get(ipc["properties"]["publicIPAddress"]["id"])
                for ipc in nic["properties"]["ipConfigurations"]
                if ipc["properties"].get("publicIPAddress")]
        network.remove_nic(azure, nic)
        for pip in pips:
            if pip and _is_delete(pip["properties"].get("deleteOption")):
                network.remove_pip(azure, pip)
    os_disk = props["storageProfile"].get("osDisk") or {}
    disk_id = (os_disk.get("managedDisk") or {}).get("id")
    if disk_id:
        disks.release_disk(azure, disk_id,
                           _is_delete(os_disk.get("deleteOption")))
    store.remove(vm["id"])


def delete_vm(call: Call) -> Reply:
    arm.require_group(call)
    azure, store = call.azure, call.azure.store
    rid = arm.rid(call, CMP, "virtualMachines", "vmName")
    vm = store.get(rid)
    if vm is None:
        return Reply(204)
    last = store.latest_operation(rid)
    if last is not None and last.status == "InProgress":
        if last.kind == "vm-delete":
            return Reply(202, None, arm.lro_headers(call, last, True))
        store.cancel(last)
    vm["properties"]["provisioningState"] = "Deleting"
    op = arm.begin(call, CMP, vm["location"], rid, "vm-delete",
                   azure.behaviour.vm_delete_latency,
                   lambda op: remove_vm(azure, vm))
    return Reply(202, None, arm.lro_headers(call, op, location=True))


def get_vm(call: Call) -> Reply:
    arm.require_group(call)
    vm = call.azure.store.require(arm.rid(call, CMP, "virtualMachines",
                                          "vmName"))
    return Reply(200, render(vm, call.q("$expand") or ""))


def get_instance_view(call: Call) -> Reply:
    arm.require_group(call)
    vm = call.azure.store.require(arm.rid(call, CMP, "virtualMachines",
                                          "vmName"))
    return Reply(200, instance_view(vm))


def list_vms(call: Call) -> Reply:
    store = call.azure.store
    if "resourceGroupName" in call.params:
        scope = arm.require_group(call)["id"]
    else:
        scope = f"/subscriptions/{call.azure.subscription_id}"
    vms = store.of_type(T_VM, scope)
    if "location" in call.params:
        loc = call.azure.catalog.check_location(call.params["location"])
        vms = [vm for vm in vms if vm["location"] == loc]
    expand = call.q("$expand") or ""
    return arm.page(call, vms, lambda vm: render(vm, expand))


def register(router: Router) -> None:
    vm = VMS + "/{vmName}"
    router.add("PUT", vm, put_vm)
    router.add("PATCH", vm, patch_vm)
    router.add("GET", vm, get_vm)
    router.add("DELETE", vm, delete_vm)
    router.add("GET", vm + "/instanceView", get_instance_view)
    router.add("GET", VMS, list_vms)
    router.add("GET", arm.SUB + "/providers/Microsoft.Compute/"
               "virtualMachines", list_vms)
    router.add("GET", arm.SUB + "/providers/Microsoft.Compute/locations/"
               "{location}/virtualMachines", list_vms)
