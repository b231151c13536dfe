"""Resource names, tags and request bodies from a LaunchSpec (pure logic).

Names: each launch *attempt* gets its own VM name -- the hostname
(``np<id>``) for the first attempt, ``np<id>-<attempt>`` after that --
because the launcher deletes a failed attempt's resources while the next
attempt is already being created; reusing a name would turn the new PUT
into an update of a resource being deleted.  Every other resource is named
after its VM (``<vm>-nic``, ``<vm>-pip4``, ``<vm>-pip6``, ``<vm>-disk``),
so the VM name alone -- the node's ``external_id`` -- is enough to find
and delete everything a launch created, even after a crash.

Bodies are REST wire-format dicts (camelCase under ``properties``), which
the SDK sends as they are.  The NIC, both public IPs and the OS disk get
``deleteOption: Delete`` so deleting the VM deletes them too.

Login: Linux images get the SSH ``key`` and/or a password (given or
generated); Windows images (``connection-type: winrm``) need a password.

Tags: every resource carries the label ``tags`` (values as strings), the
rendered ``dynamic-tags`` and the ``nodepool_*`` metadata, which win over
a label tag of the same name (leak detection depends on them).
"""

from __future__ import annotations

import base64
import secrets
import string
from typing import Any, Mapping

from nodepool.driver import errors
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["vm_name", "nic_name", "pip_name", "disk_name", "resource_names",
           "tags", "dynamic_tags", "pip_body", "nic_body", "vm_body",
           "login", "generate_password", "network_plan", "subnet_id"]



# -- names ------------------------------------------------------------------

def vm_name(spec: LaunchSpec) -> str:
    return spec.hostname if spec.attempt <= 1 else \
        f"{spec.hostname}-{spec.attempt}"


def nic_name(vm: str) -> str:
    return f"{vm}-nic"


def pip_name(vm: str, version: int) -> str:
    return f"{vm}-pip{version}"


def disk_name(vm: str) -> str:
    return f"{vm}-disk"


def resource_names(vm: str) -> dict[str, list[str]]:
    """Every resource a launch of VM ``vm`` may create, by listing kind."""
    return {"vms": [vm], "nics": [nic_name(vm)],
            "pips": [pip_name(vm, 4), pip_name(vm, 6)],
            "disks": [disk_name(vm)]}


def subnet_id(settings: Mapping[str, Any], subscription: str) -> str | None:
    """``subnet-id`` if set (it wins), else the id ``network`` names."""
    if settings.get("subnet-id"):
        return settings["subnet-id"]
    net = settings.get("network") or {}
    if not net.get("network"):
        return None
    return (f"/subscriptions/{subscription}/resourceGroups/"
            f"{net['resource-group']}/providers/Microsoft.Network/"
            f"virtualNetworks/{net['network']}/subnets/"
            f"{net.get('subnet') or 'default'}")


# -- tags -------------------------------------------------------------------

def dynamic_tags(spec: LaunchSpec) -> dict[str, str]:
    """The label's ``dynamic-tags`` rendered over the request."""
    return spec.render("dynamic-tags")


def tags(spec: LaunchSpec) -> dict[str, str]:
    out = {str(k): str(v) for k, v in
           (spec.label.settings.get("tags") or {}).items()}
    out.update(dynamic_tags(spec))
    out.update(spec.metadata)
    return out


# -- network ----------------------------------------------------------------

def network_plan(pool_settings: Mapping[str, Any]) -> dict[str, bool]:
    """Which addresses a node of this pool gets (config values are already
    the effective ones: ``ipv4`` true unless only IPv6 was asked for)."""
    ipv6 = bool(pool_settings.get("ipv6"))
    return {"ipv4": True,   # Azure needs an IPv4 primary configuration
            "ipv6": ipv6,
            "public-ipv4": bool(pool_settings.get("public-ipv4", True)),
            "public-ipv6": ipv6 and bool(pool_settings.get("public-ipv6"))}


def pip_body(location: str, tag_map: Mapping[str, str], version: int
             ) -> dict:
    # Standard SKU (Basic is retired) must be Static: the address exists
    # from creation, so keyscans need not wait for the VM to allocate one.
    return {"location": location, "tags": dict(tag_map),
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static",
                           "publicIPAddressVersion": f"IPv{version}",
                           "deleteOption": "Delete"}}


def nic_body(location: str, tag_map: Mapping[str, str], subnet: str,
             pip_ids: Mapping[int, str], ipv6: bool) -> dict:
    configs = []
    for version in (4, 6) if ipv6 else (4,):
        props: dict[str, Any] = {"subnet": {"id": subnet},
                                 "privateIPAddressVersion": f"IPv{version}",
                                 "privateIPAllocationMethod": "Dynamic",
                                 "primary": version == 4}
        if pip_ids.get(version):
            props["publicIPAddress"] = {"id": pip_ids[version]}
        configs.append({"name": f"ipv{version}", "properties": props})
    return {"location": location, "tags": dict(tag_map),
            "properties": {"ipConfigurations": configs}}


# -- the VM -----------------------------------------------------------------

PASSWORD_CLASSES = (string.ascii_lowercase, string.ascii_uppercase,
                    string.digits, "!#%*+-=?@^_")


def generate_password(length: int = 24) -> str:
    """A random password meeting Azure's rule (3 of 4 classes, 12-72)."""
    chars = [secrets.choice(c) for c in PASSWORD_CLASSES]
    alphabet = "".join(PASSWORD_CLASSES)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def login(image, generate=generate_password) -> tuple[str, str | None,
                                                       str | None]:
    """(username, ssh key, password) of an image; a password is made when
    ``generate-password`` is set and none is given."""
    settings = image.settings or {}
    password = settings.get("password")
    if not password and settings.get("generate-password"):
        password = generate()
    return image.username or "zuul", settings.get("key"), password


def _b64(text: str | None) -> str | None:
    if text is None:
        return None
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def os_profile(spec: LaunchSpec, username: str, key: str | None,
               password: str | None) -> dict:
    custom = _b64(spec.label.settings.get("custom-data"))
    if getattr(spec.label.image, "connection_type", "ssh") == "winrm":
        return _windows_profile(spec, username, password, custom)
    if not key and not password:
        raise errors.ConfigurationError(
            f"label {spec.label.name}: image has neither key nor password "
            "(set key, password or generate-password)",
            stat_key="error.config")
    linux: dict[str, Any] = {"disablePasswordAuthentication": not password}
    if key:
        linux["ssh"] = {"publicKeys": [{
            "path": f"/home/{username}/.ssh/authorized_keys",
            "keyData": key}]}
    profile: dict[str, Any] = {"computerName": spec.hostname,
                               "adminUsername": username,
                               "linuxConfiguration": linux}
    if password:
        profile["adminPassword"] = password
    if custom is not None:
        profile["customData"] = custom
    return profile


def _windows_profile(spec: LaunchSpec, username: str, password: str | None,
                     custom: str | None) -> dict:
    """Windows (``connection-type: winrm``) logs in by password only."""
    if not password:
        raise errors.ConfigurationError(
            f"label {spec.label.name}: a Windows image needs password or "
            "generate-password", stat_key="error.config")
    profile = {"computerName": spec.hostname, "adminUsername": username,
               "adminPassword": password,
               "windowsConfiguration": {"provisionVMAgent": True}}
    if custom is not None:
        profile["customData"] = custom
    return profile


def vm_body(spec: LaunchSpec, location: str, vm: str, image_ref: Mapping,
            nic_id: str, tag_map: Mapping[str, str],
            generate=generate_password) -> dict:
    settings = spec.label.settings
    size = (settings.get("hardware-profile") or {}).get("vm-size")
    username, key, password = login(spec.label.image, generate)
    os_disk: dict[str, Any] = {"name": disk_name(vm),
                               "createOption": "FromImage",
                               "caching": "ReadWrite",
                               "deleteOption": "Delete"}
    if settings.get("volume-size"):
        os_disk["diskSizeGB"] = int(settings["volume-size"])
    props: dict[str, Any] = {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": dict(image_ref),
                           "osDisk": os_disk},
        "osProfile": os_profile(spec, username, key, password),
        "networkProfile": {"networkInterfaces": [{
            "id": nic_id,
            "properties": {"primary": True, "deleteOption": "Delete"}}]},
    }
    user_data = _b64(settings.get("user-data"))
    if user_data is not None:
        props["userData"] = user_data
    return {"location": location, "tags": dict(tag_map), "properties": props}
