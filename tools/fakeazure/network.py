"""Microsoft.Network: virtual networks, subnets, public IP addresses, NICs.

Every PUT is a long-running operation (201/200 + ``Azure-AsyncOperation``,
``provisioningState: Updating`` until ``network_latency`` has passed) and
every DELETE answers 202 and completes the same way, as the real network RP.

References are checked as Azure checks them, so a driver that deletes in the
wrong order fails here as it would in Azure:

- a NIC naming a missing subnet or public IP: 400 InvalidResourceReference;
- a public IP already used by another ip configuration: 400
  PublicIPAddressInUse;
- deleting a NIC still attached to a VM: 400 NicInUse;
- deleting a public IP still attached to a NIC: 400
  PublicIPAddressCannotBeDeleted.

Dynamic public IPs get their address only once the VM using them is running
(:func:`vm_running`); Standard SKU public IPs must be Static.
"""

from __future__ import annotations

import uuid
from typing import Optional

from . import arm
from .addresses import subnet_prefix
from .routes import Call, Reply, Router
from .store import ArmError, Operation, norm_location

NET = "Microsoft.Network"
VNETS = arm.RG + "/providers/Microsoft.Network/virtualNetworks"
PIPS = arm.RG + "/providers/Microsoft.Network/publicIPAddresses"
NICS = arm.RG + "/providers/Microsoft.Network/networkInterfaces"
T_VNET = "Microsoft.Network/virtualNetworks"
T_PIP = "Microsoft.Network/publicIPAddresses"
T_NIC = "Microsoft.Network/networkInterfaces"


def _etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def _base(call: Call, rid: str, rtype: str, body: dict) -> dict:
    if not body.get("location"):
        raise ArmError(400, "LocationRequired",
                       "The location property is required for this "
                       "definition.")
    return {"id": rid, "name": rid.rsplit("/", 1)[1], "type": rtype,
            "location": norm_location(body["location"]),
            "tags": arm.tags_of(body), "etag": _etag()}


def _put_reply(call: Call, resource: dict, created: bool) -> Reply:
    """Store ``resource`` as Updating and start the operation finishing it."""
    store = call.azure.store
    resource["properties"]["provisioningState"] = "Updating"
    store.put(resource)

    def complete(op: Operation) -> None:
        current = store.get(resource["id"])
        if current is not None:
            current["properties"]["provisioningState"] = "Succeeded"

    op = arm.begin(call, NET, resource["location"], resource["id"], "update",
                   call.azure.behaviour.network_latency, complete)
    return Reply(201 if created else 200, arm.public(resource),
                 arm.lro_headers(call, op, location=False))


def _delete_reply(call: Call, resource: dict, remove) -> Reply:
    op = arm.begin(call, NET, resource["location"], resource["id"], "delete",
                   call.azure.behaviour.network_latency,
                   lambda op: remove(call.azure, resource))
    resource["properties"]["provisioningState"] = "Deleting"
    return Reply(202, None, arm.lro_headers(call, op, location=True))


def _get(call: Call, rtype: str, param: str) -> Reply:
    arm.require_group(call)
    return Reply(200, arm.public(call.azure.store.require(
        arm.rid(call, NET, rtype, param))))


def _list(call: Call, rtype: str) -> Reply:
    store = call.azure.store
    if "resourceGroupName" in call.params:
        scope = arm.require_group(call)["id"]
    else:
        scope = f"/subscriptions/{call.azure.subscription_id}"
    return arm.page(call, store.of_type(rtype, scope))


# -- virtual networks and subnets ---------------------------------------------

def _subnet(vnet_id: str, raw: dict) -> dict:
    name = raw.get("name")
    if not name:
        raise ArmError(400, "InvalidRequestFormat", "A subnet needs a name.")
    props = dict(raw.get("properties") or {})
    props["provisioningState"] = "Succeeded"
    return {"id": f"{vnet_id}/subnets/{name}", "name": name,
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "etag": _etag(), "properties": props}


def put_vnet(call: Call) -> Reply:
    arm.require_group(call)
    body = call.json()
    rid = arm.rid(call, NET, "virtualNetworks", "virtualNetworkName")
    vnet = _base(call, rid, T_VNET, body)
    props = body.get("properties") or {}
    vnet["properties"] = {
        "addressSpace": props.get("addressSpace") or {"addressPrefixes": []},
        "subnets": [_subnet(rid, s) for s in props.get("subnets") or []],
        "resourceGuid": str(uuid.uuid4())}
    created = call.azure.store.get(rid) is None
    return _put_reply(call, vnet, created)


def find_subnet(store, subnet_id: str) -> Optional[dict]:
    vnet_id, sep, name = subnet_id.rpartition("/subnets/")
    vnet = store.get(vnet_id) if sep else None
    if vnet is None:
        return None
    for subnet in vnet["properties"]["subnets"]:
        if subnet["name"].lower() == name.lower():
            return subnet
    return None


def get_subnet(call: Call) -> Reply:
    arm.require_group(call)
    rid = arm.rid(call, NET, "virtualNetworks", "virtualNetworkName")
    subnet = find_subnet(call.azure.store,
                         f"{rid}/subnets/{call.params['subnetName']}")
    if subnet is None:
        raise ArmError(404, "NotFound",
                       f"Resource {rid}/subnets/{call.params['subnetName']} "
                       "not found.")
    return Reply(200, arm.public(subnet))


def put_subnet(call: Call) -> Reply:
    arm.require_group(call)
    rid = arm.rid(call, NET, "virtualNetworks", "virtualNetworkName")
    vnet = call.azure.store.require(rid)
    raw = call.json()
    raw["name"] = call.params["subnetName"]
    subnet = _subnet(rid, raw)
    subnets = vnet["properties"]["subnets"]
    created = not any(s["name"].lower() == subnet["name"].lower()
                      for s in subnets)
    subnets[:] = [s for s in subnets
                  if s["name"].lower() != subnet["name"].lower()] + [subnet]
    op = arm.begin(call, NET, vnet["location"], subnet["id"], "update", 0.0,
                   lambda op: None)
    return Reply(201 if created else 200, arm.public(subnet),
                 arm.lro_headers(call, op, location=False))


# -- public IP addresses ------------------------------------------------------

def _allocation(rid: str, props: dict, sku: str) -> str:
    method = str(props.get("publicIPAllocationMethod") or
                 ("Static" if sku == "Standard" else "Dynamic")).capitalize()
    if method not in ("Static", "Dynamic"):
        raise ArmError(400, "InvalidRequestFormat",
                       f"Invalid publicIPAllocationMethod '{method}'.")
    if sku == "Standard" and method != "Static":
        raise ArmError(400, "StandardSkuPublicIPAddressesMustBeStatic",
                       f"Standard sku publicIp {rid} must have "
                       "AllocationMethod set to Static.")
    return method


def assign_public_address(azure, pip: dict) -> None:
    props = pip["properties"]
    if props.get("ipAddress"):
        return
    b = azure.behaviour
    if props["publicIPAddressVersion"] == "IPv6":
        props["ipAddress"] = azure.addresses.allocate(
            b.public_ipv6_network, first=1, fixed=b.fixed_public_ipv6)
    else:
        props["ipAddress"] = azure.addresses.allocate(
            b.public_ipv4_network, first=1, fixed=b.fixed_public_ipv4)


def put_pip(call: Call) -> Reply:
    arm.require_group(call)
    body = call.json()
    rid = arm.rid(call, NET, "publicIPAddresses", "publicIpAddressName")
    existing = call.azure.store.get(rid)
    pip = _base(call, rid, T_PIP, body)
    props = body.get("properties") or {}
    sku = str((body.get("sku") or {}).get("name") or "Standard").capitalize()
    version = "IPv6" if str(props.get("publicIPAddressVersion", "")).lower() \
        == "ipv6" else "IPv4"
    pip["sku"] = {"name": sku, "tier": (body.get("sku") or {}).get(
        "tier", "Regional")}
    pip["properties"] = {
        "publicIPAllocationMethod": _allocation(rid, props, sku),
        "publicIPAddressVersion": version,
        "idleTimeoutInMinutes": props.get("idleTimeoutInMinutes", 4),
        "ipTags": props.get("ipTags", []),
        "resourceGuid": str(uuid.uuid4())}
    if props.get("deleteOption"):
        pip["properties"]["deleteOption"] = props["deleteOption"]
    if existing is not None:  # keep what an update cannot change
        for key in ("ipAddress", "ipConfiguration", "resourceGuid"):
            if key in existing["properties"]:
                pip["properties"][key] = existing["properties"][key]
    if pip["properties"]["publicIPAllocationMethod"] == "Static":
        assign_public_address(call.azure, pip)
    if "zones" in body:
        pip["zones"] = body["zones"]
    return _put_reply(call, pip, existing is None)


def remove_pip(azure, pip: dict) -> None:
    b = azure.behaviour
    if pip["properties"].get("ipAddress") not in (b.fixed_public_ipv4,
                                                  b.fixed_public_ipv6):
        azure.addresses.release(pip["properties"].get("ipAddress"))
    azure.store.remove(pip["id"])


def delete_pip(call: Call) -> Reply:
    arm.require_group(call)
    rid = arm.rid(call, NET, "publicIPAddresses", "publicIpAddressName")
    pip = call.azure.store.get(rid)
    if pip is None:
        return Reply(204)
    user = pip["properties"].get("ipConfiguration")
    if user:
        raise ArmError(400, "PublicIPAddressCannotBeDeleted",
                       f"Public IP address {rid} can not be deleted since it "
                       f"is still allocated to resource {user['id']}. In "
                       "order to delete the public IP, disassociate/detach "
                       "the Public IP address from the resource.")
    return _delete_reply(call, pip, remove_pip)


# -- network interfaces -------------------------------------------------------

def _reference(store, ref: Optional[dict], nic_id: str) -> Optional[dict]:
    if not ref:
        return None
    target = store.get(ref.get("id", "")) if "/subnets/" not in \
        ref.get("id", "") else find_subnet(store, ref["id"])
    if target is None:
        raise ArmError(400, "InvalidResourceReference",
                       f"Resource {ref.get('id')} referenced by resource "
                       f"{nic_id} was not found. Please make sure that the "
                       "referenced resource exists, and that both resources "
                       "are in the same region.")
    return target


def _ip_configuration(azure, nic_id: str, raw: dict, primary: bool) -> dict:
    store = azure.store
    name = raw.get("name") or "ipconfig1"
    props = raw.get("properties") or {}
    ipc_id = f"{nic_id}/ipConfigurations/{name}"
    subnet = _reference(store, props.get("subnet"), nic_id)
    if subnet is None:
        raise ArmError(400, "InvalidRequestFormat",
                       f"IP configuration {ipc_id} needs a subnet.")
    version = "IPv6" if str(props.get("privateIPAddressVersion", "")
                            ).lower() == "ipv6" else "IPv4"
    out = {"privateIPAllocationMethod":
           str(props.get("privateIPAllocationMethod") or "Dynamic"
               ).capitalize(),
           "privateIPAddressVersion": version,
           "subnet": {"id": subnet["id"]},
           "primary": bool(props.get("primary", primary)),
           "provisioningState": "Succeeded"}
    out["privateIPAddress"] = props.get("privateIPAddress") if \
        out["privateIPAllocationMethod"] == "Static" else \
        azure.addresses.allocate(subnet_prefix(subnet, version))
    pip = _reference(store, props.get("publicIPAddress"), nic_id)
    if pip is not None:
        option = ((props["publicIPAddress"].get("properties") or {})
                  .get("deleteOption"))
        if option:
            pip["properties"]["deleteOption"] = option
        pip["properties"]["ipConfiguration"] = {"id": ipc_id}
        out["publicIPAddress"] = {"id": pip["id"]}
    return {"id": ipc_id, "name": name, "etag": _etag(),
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": out}


def _check_references(azure, nic_id: str, raws: list) -> None:
    """Reject bad references before anything is allocated or linked."""
    for raw in raws:
        props = raw.get("properties") or {}
        _reference(azure.store, props.get("subnet"), nic_id)
        pip = _reference(azure.store, props.get("publicIPAddress"), nic_id)
        user = pip["properties"].get("ipConfiguration") if pip else None
        if user and not user["id"].lower().startswith(nic_id.lower() + "/"):
            raise ArmError(400, "PublicIPAddressInUse",
                           f"Resource {pip['id']} is referenced by "
                           f"{user['id']} and cannot be used by {nic_id}.")


def _release_ip_configurations(azure, nic: dict) -> None:
    for ipc in nic["properties"].get("ipConfigurations", []):
        props = ipc["properties"]
        if props["privateIPAllocationMethod"] == "Dynamic":
            azure.addresses.release(props.get("privateIPAddress"))
        ref = props.get("publicIPAddress")
        pip = azure.store.get(ref["id"]) if ref else None
        if pip is not None:
            pip["properties"].pop("ipConfiguration", None)


def put_nic(call: Call) -> Reply:
    arm.require_group(call)
    body = call.json()
    azure = call.azure
    rid = arm.rid(call, NET, "networkInterfaces", "networkInterfaceName")
    existing = azure.store.get(rid)
    nic = _base(call, rid, T_NIC, body)
    props = body.get("properties") or {}
    raws = props.get("ipConfigurations") or []
    if not raws:
        raise ArmError(400, "InvalidRequestFormat",
                       f"Network interface {rid} needs an ip configuration.")
    _check_references(azure, rid, raws)
    if existing is not None:
        _release_ip_configurations(azure, existing)
    nic["properties"] = {
        "ipConfigurations": [_ip_configuration(azure, rid, raw, i == 0)
                             for i, raw in enumerate(raws)],
        "enableAcceleratedNetworking":
            bool(props.get("enableAcceleratedNetworking", False)),
        "enableIPForwarding": bool(props.get("enableIPForwarding", False)),
        "resourceGuid": str(uuid.uuid4())}
    for key in ("networkSecurityGroup", "dnsSettings"):
        if key in props:
            nic["properties"][key] = props[key]
    if existing is not None:
        for key in ("virtualMachine", "macAddress", "primary"):
            if key in existing["properties"]:
                nic["properties"][key] = existing["properties"][key]
    return _put_reply(call, nic, existing is None)


def remove_nic(azure, nic: dict) -> None:
    _release_ip_configurations(azure, nic)
    azure.store.remove(nic["id"])


def delete_nic(call: Call) -> Reply:
    arm.require_group(call)
    rid = arm.rid(call, NET, "networkInterfaces", "networkInterfaceName")
    nic = call.azure.store.get(rid)
    if nic is None:
        return Reply(204)
    vm = nic["properties"].get("virtualMachine")
    if vm:
        raise ArmError(400, "NicInUse",
                       f"Network Interface {rid} is used by existing resource "
                       f"{vm['id']}. In order to delete the network interface,"
                       " it must be dissociated from the resource.")
    return _delete_reply(call, nic, remove_nic)


def vm_running(azure, nic: dict) -> None:
    """A VM using ``nic`` came up: dynamic public IPs get their address."""
    for ipc in nic["properties"]["ipConfigurations"]:
        ref = ipc["properties"].get("publicIPAddress")
        pip = azure.store.get(ref["id"]) if ref else None
        if pip is not None:
            assign_public_address(azure, pip)


def register(router: Router) -> None:
    vnet = VNETS + "/{virtualNetworkName}"
    router.add("PUT", vnet, put_vnet)
    router.add("GET", vnet, lambda c: _get(c, "virtualNetworks",
                                           "virtualNetworkName"))
    router.add("GET", VNETS, lambda c: _list(c, T_VNET))
    router.add("GET", vnet + "/subnets/{subnetName}", get_subnet)
    router.add("PUT", vnet + "/subnets/{subnetName}", put_subnet)
    pip = PIPS + "/{publicIpAddressName}"
    router.add("PUT", pip, put_pip)
    router.add("GET", pip, lambda c: _get(c, "publicIPAddresses",
                                          "publicIpAddressName"))
    router.add("DELETE", pip, delete_pip)
    router.add("GET", PIPS, lambda c: _list(c, T_PIP))
    router.add("GET", arm.SUB + "/providers/Microsoft.Network/"
               "publicIPAddresses", lambda c: _list(c, T_PIP))
    nic = NICS + "/{networkInterfaceName}"
    router.add("PUT", nic, put_nic)
    router.add("GET", nic, lambda c: _get(c, "networkInterfaces",
                                          "networkInterfaceName"))
    router.add("DELETE", nic, delete_nic)
    router.add("GET", NICS, lambda c: _list(c, T_NIC))
    router.add("GET", arm.SUB + "/providers/Microsoft.Network/"
               "networkInterfaces", lambda c: _list(c, T_NIC))
