"""Microsoft.Compute disks and managed images.

An OS disk is made for every VM (see ``compute.py``) and is ``Attached``,
with ``managedBy`` naming the VM, until the VM goes.  When the VM is
deleted the disk is deleted too if the VM's ``osDisk.deleteOption`` is
``Delete``; otherwise it stays behind ``Unattached`` (a leak the driver's
cleanup must find, as in Azure).  Deleting an attached disk answers 409
OperationNotAllowed.

Managed images can be created with PUT (a long-running operation) or seeded
from Python with :func:`add_image`.
"""

from __future__ import annotations

import uuid
from typing import Optional

from . import arm
from .routes import Call, Reply, Router
from .store import ArmError, Operation, norm_location, resource_id, \
    utcnow_iso

CMP = "Microsoft.Compute"
DISKS = arm.RG + "/providers/Microsoft.Compute/disks"
IMAGES = arm.RG + "/providers/Microsoft.Compute/images"
T_DISK = "Microsoft.Compute/disks"
T_IMAGE = "Microsoft.Compute/images"


def make_os_disk(azure, vm: dict, os_disk: dict, image_ref: dict) -> dict:
    """Create the VM's OS disk; returns the stored disk."""
    group = vm["id"].split("/")[4]
    name = os_disk.get("name") or \
        f"{vm['name']}_OsDisk_1_{uuid.uuid4().hex}"
    account = (os_disk.get("managedDisk") or {}).get(
        "storageAccountType", "Premium_LRS")
    size = int(os_disk.get("diskSizeGB") or 30)
    disk = {
        "id": resource_id(azure.subscription_id, group, CMP, "disks", name),
        "name": name, "type": T_DISK, "location": vm["location"], "tags": {},
        "managedBy": vm["id"],
        "sku": {"name": account,
                "tier": "Premium" if account.startswith("Premium")
                else "Standard"},
        "properties": {
            "osType": os_disk.get("osType", "Linux"),
            "hyperVGeneration": "V2",
            "creationData": {"createOption": "FromImage",
                             "imageReference": dict(image_ref)},
            "diskSizeGB": size, "diskSizeBytes": size * 1024 ** 3,
            "uniqueId": str(uuid.uuid4()), "timeCreated": utcnow_iso(),
            "provisioningState": "Succeeded", "diskState": "Attached"}}
    return azure.store.put(disk)


def release_disk(azure, disk_id: str, delete: bool) -> None:
    """The VM using the disk is gone: delete or detach it."""
    disk = azure.store.get(disk_id)
    if disk is None:
        return
    if delete:
        azure.store.remove(disk_id)
    else:
        disk.pop("managedBy", None)
        disk["properties"]["diskState"] = "Unattached"


def _get(call: Call, rtype: str, param: str) -> Reply:
    arm.require_group(call)
    return Reply(200, arm.public(call.azure.store.require(
        arm.rid(call, CMP, rtype, param))))


def _list(call: Call, rtype: str) -> Reply:
    if "resourceGroupName" in call.params:
        scope = arm.require_group(call)["id"]
    else:
        scope = f"/subscriptions/{call.azure.subscription_id}"
    return arm.page(call, call.azure.store.of_type(rtype, scope))


def _delete(call: Call, body: dict) -> Reply:
    store = call.azure.store
    op = arm.begin(call, CMP, body["location"], body["id"], "delete", 0.0,
                   lambda op: store.remove(body["id"]))
    return Reply(202, None, arm.lro_headers(call, op, location=True))


def delete_disk(call: Call) -> Reply:
    arm.require_group(call)
    disk = call.azure.store.get(arm.rid(call, CMP, "disks", "diskName"))
    if disk is None:
        return Reply(204)
    if disk.get("managedBy"):
        raise ArmError(409, "OperationNotAllowed",
                       f"Disk {disk['name']} is attached to VM "
                       f"{disk['managedBy']}.")
    return _delete(call, disk)


# -- images -------------------------------------------------------------------

def _image(azure, rid: str, location: str, tags: dict,
           storage_profile: Optional[dict] = None) -> dict:
    profile = storage_profile or {"osDisk": {
        "osType": "Linux", "osState": "Generalized", "diskSizeGB": 30,
        "storageAccountType": "Standard_LRS"}}
    return {"id": rid, "name": rid.rsplit("/", 1)[1], "type": T_IMAGE,
            "location": norm_location(location), "tags": dict(tags),
            "properties": {"storageProfile": profile,
                           "hyperVGeneration": "V2",
                           "provisioningState": "Succeeded"}}


def add_image(azure, resource_group: str, name: str, location: str,
              tags: Optional[dict] = None) -> dict:
    rid = resource_id(azure.subscription_id, resource_group, CMP, "images",
                      name)
    return azure.store.put(_image(azure, rid, location, tags or {}))


def put_image(call: Call) -> Reply:
    arm.require_group(call)
    body = call.json()
    if not body.get("location"):
        raise ArmError(400, "LocationRequired",
                       "The location property is required for this "
                       "definition.")
    store = call.azure.store
    rid = arm.rid(call, CMP, "images", "imageName")
    created = store.get(rid) is None
    image = _image(call.azure, rid, body["location"], arm.tags_of(body),
                   (body.get("properties") or {}).get("storageProfile"))
    image["properties"]["provisioningState"] = "Creating"
    store.put(image)

    def complete(op: Operation) -> None:
        current = store.get(rid)
        if current is not None:
            current["properties"]["provisioningState"] = "Succeeded"

    op = arm.begin(call, CMP, image["location"], rid, "create",
                   call.azure.behaviour.network_latency, complete)
    return Reply(201 if created else 200, arm.public(image),
                 arm.lro_headers(call, op, location=False))


def delete_image(call: Call) -> Reply:
    arm.require_group(call)
    image = call.azure.store.get(arm.rid(call, CMP, "images", "imageName"))
    return Reply(204) if image is None else _delete(call, image)


def register(router: Router) -> None:
    disk = DISKS + "/{diskName}"
    router.add("GET", disk, lambda c: _get(c, "disks", "diskName"))
    router.add("DELETE", disk, delete_disk)
    router.add("GET", DISKS, lambda c: _list(c, T_DISK))
    router.add("GET", arm.SUB + "/providers/Microsoft.Compute/disks",
               lambda c: _list(c, T_DISK))
    image = IMAGES + "/{imageName}"
    router.add("PUT", image, put_image)
    router.add("GET", image, lambda c: _get(c, "images", "imageName"))
    router.add("DELETE", image, delete_image)
    router.add("GET", IMAGES, lambda c: _list(c, T_IMAGE))
    router.add("GET", arm.SUB + "/providers/Microsoft.Compute/images",
               lambda c: _list(c, T_IMAGE))
