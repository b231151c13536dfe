"""Names, tags and request bodies (pure functions of the spec)."""

from __future__ import annotations

import base64
import string

import pytest

from nodepool.driver import errors
from nodepool.driver.azure import params
from nodepool.driver.statemachine import RequestInfo

LOC = "westus"


def test_names_per_attempt(spec_factory):
    assert params.vm_name(spec_factory("0000000042")) == "np0000000042"
    assert params.vm_name(spec_factory("0000000042", attempt=3)) == \
        "np0000000042-3"
    assert params.resource_names("np1-2") == {
        "vms": ["np1-2"], "nics": ["np1-2-nic"],
        "pips": ["np1-2-pip4", "np1-2-pip6"], "disks": ["np1-2-disk"]}


def test_subnet_id():
    assert params.subnet_id({"subnet-id": "/s/x", "network": {
        "resource-group": "rg", "network": "n", "subnet": "a"}}, "sub") == \
        "/s/x"
    assert params.subnet_id({"network": {"resource-group": "rg",
                                         "network": "n", "subnet": "a"}},
                            "sub") == (
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/"
        "virtualNetworks/n/subnets/a")
    assert params.subnet_id({"network": None}, "sub") is None
    assert params.subnet_id({"network": {"resource-group": "rg",
                                         "network": None,
                                         "subnet": "default"}}, "s") is None


def test_tags_metadata_wins_and_dynamic_tags(spec_factory):
    spec = spec_factory(label={
        "tags": {"team": "ci", "n": 3, "nodepool_node_id": "forged"},
        "dynamic-tags": {"req": "{request.id}", "who": "{request.requestor}",
                         "bad": "{request.missing}"}},
        request=RequestInfo(id="200-1", requestor="zuul"))
    tags = params.tags(spec)
    assert tags == {"team": "ci", "n": "3", "req": "200-1", "who": "zuul",
                    "nodepool_node_id": "0000000001",
                    "nodepool_pool_name": "main",
                    "nodepool_provider_name": "azure"}


def test_network_plan():
    assert params.network_plan({"public-ipv4": True}) == {
        "ipv4": True, "ipv6": False, "public-ipv4": True,
        "public-ipv6": False}
    assert params.network_plan({"public-ipv4": False, "ipv6": True,
                                "public-ipv6": True}) == {
        "ipv4": True, "ipv6": True, "public-ipv4": False,
        "public-ipv6": True}


def test_pip_and_nic_bodies():
    pip = params.pip_body(LOC, {"a": "b"}, 6)
    assert pip["sku"] == {"name": "Standard"}
    assert pip["properties"] == {"publicIPAllocationMethod": "Static",
                                 "publicIPAddressVersion": "IPv6",
                                 "deleteOption": "Delete"}
    nic = params.nic_body(LOC, {}, "/subnet", {4: "/pip4", 6: "/pip6"},
                          ipv6=True)
    v4, v6 = nic["properties"]["ipConfigurations"]
    assert v4["properties"]["primary"] is True
    assert v4["properties"]["publicIPAddress"] == {"id": "/pip4"}
    assert v6["properties"]["privateIPAddressVersion"] == "IPv6"
    assert v6["properties"]["publicIPAddress"] == {"id": "/pip6"}
    private = params.nic_body(LOC, {}, "/subnet", {}, ipv6=False)
    [only] = private["properties"]["ipConfigurations"]
    assert "publicIPAddress" not in only["properties"]


def test_vm_body(spec_factory):
    spec = spec_factory(label={"user-data": "ud", "custom-data": "cd",
                               "volume-size": 80})
    body = params.vm_body(spec, LOC, "np1", {"id": "/img"}, "/nic",
                          {"t": "v"})
    props = body["properties"]
    assert body["tags"] == {"t": "v"} and body["location"] == LOC
    assert props["hardwareProfile"] == {"vmSize": "Standard_B2s"}
    assert props["storageProfile"]["imageReference"] == {"id": "/img"}
    assert props["storageProfile"]["osDisk"] == {
        "name": "np1-disk", "createOption": "FromImage",
        "caching": "ReadWrite", "deleteOption": "Delete", "diskSizeGB": 80}
    assert props["networkProfile"]["networkInterfaces"] == [{
        "id": "/nic", "properties": {"primary": True,
                                     "deleteOption": "Delete"}}]
    assert base64.b64decode(props["userData"]) == b"ud"
    profile = props["osProfile"]
    assert base64.b64decode(profile["customData"]) == b"cd"
    assert profile["computerName"] == "np0000000001"
    assert profile["linuxConfiguration"] == {
        "disablePasswordAuthentication": True,
        "ssh": {"publicKeys": [{"path": "/home/zuul/.ssh/authorized_keys",
                                "keyData": "ssh-ed25519 AAAA k"}]}}
    assert "adminPassword" not in profile


def test_vm_body_passwords(spec_factory):
    spec = spec_factory(image={"key": None, "password": "pw"})
    profile = params.vm_body(spec, LOC, "v", {}, "/n", {})[
        "properties"]["osProfile"]
    assert profile["adminPassword"] == "pw"
    assert profile["linuxConfiguration"] == {
        "disablePasswordAuthentication": False}
    spec = spec_factory(image={"generate-password": True})
    profile = params.vm_body(spec, LOC, "v", {}, "/n", {},
                             generate=lambda: "made")["properties"][
        "osProfile"]
    assert profile["adminPassword"] == "made"
    assert "ssh" in profile["linuxConfiguration"]
    # A given password wins over generate-password.
    spec = spec_factory(image={"password": "given",
                               "generate-password": True})
    assert params.login(spec.label.image, lambda: "made")[2] == "given"


def test_no_way_to_log_in_is_a_configuration_error(spec_factory):
    spec = spec_factory(image={"key": None})
    with pytest.raises(errors.ConfigurationError):
        params.vm_body(spec, LOC, "v", {}, "/n", {})


def test_generated_passwords_meet_azure_rules():
    seen = set()
    for _ in range(50):
        pw = params.generate_password()
        seen.add(pw)
        assert 12 <= len(pw) <= 72
        classes = [any(c in cls for c in pw)
                   for cls in (string.ascii_lowercase, string.ascii_uppercase,
                               string.digits, "!#%*+-=?@^_")]
        assert all(classes)
    assert len(seen) == 50


def test_windows_images_log_in_by_password(spec_factory):
    from dataclasses import replace
    spec = spec_factory(image={"password": "pw"})
    image = replace(spec.label.image, connection_type="winrm",
                    connection_port=5986)
    spec = replace(spec, label=replace(spec.label, image=image))
    profile = params.vm_body(spec, LOC, "v", {}, "/n", {})[
        "properties"]["osProfile"]
    assert profile["windowsConfiguration"] == {"provisionVMAgent": True}
    assert profile["adminPassword"] == "pw"
    assert "linuxConfiguration" not in profile
    image = replace(image, settings={**image.settings, "password": None})
    spec = replace(spec, label=replace(spec.label, image=image))
    with pytest.raises(errors.ConfigurationError):
        params.vm_body(spec, LOC, "v", {}, "/n", {})
