"""Loader-only keys (config.md §8.1): accepted, applied, and warned about."""

from __future__ import annotations

import pytest

from nodepool.config import config_from_dict, validate_config
from nodepool.config.validate import validate_data

REJECTED = ("loader-only key: accepted and used, but upstream Nodepool's "
            "config-validate rejects it")


def test_valid_config_without_loader_only_keys_has_no_warnings(valid_config):
    result = validate_data(valid_config("aws", "openstack", "azure",
                                        "static"))
    assert (result.errors, result.warnings) == ([], [])
    assert result.config.warnings == ()


def test_aws_loader_only_keys(valid_config, change):
    data = valid_config("aws")
    change(data, "providers[0].use-internal-ip", True)
    change(data, "providers[0].host-key-checking", False)
    change(data, "providers[0].public-ipv4", False)
    change(data, "providers[0].public-ipv6", True)
    change(data, "providers[0].pools[0].use-internal-ip", False)
    data["providers"][0]["pools"].append(
        {"name": "second", "labels": []})
    result = validate_data(data)
    assert result.errors == []
    assert result.warnings == [
        f"providers[0].host-key-checking: {REJECTED}",
        f"providers[0].pools[0].use-internal-ip: {REJECTED}",
        f"providers[0].public-ipv4: {REJECTED}",
        f"providers[0].public-ipv6: {REJECTED}",
        f"providers[0].use-internal-ip: {REJECTED}",
    ]
    pools = result.config.providers["aws-east"].pools
    # Provider-level values are defaults for every pool.
    assert pools["second"].settings == {
        "subnet-id": None, "security-group-id": None, "public-ipv4": False,
        "public-ipv6": True, "host-key-checking": False,
        "use-internal-ip": True, "availability-zone": None}
    assert pools["main"].settings["use-internal-ip"] is False
    assert result.config.warnings == tuple(result.warnings)


def test_azure_diskimage_password_keys(valid_config, change):
    data = valid_config("azure")
    change(data, "providers[0].diskimages", [
        {"name": "jammy", "password": "hunter2", "generate-password": True}])
    result = validate_data(data)
    assert result.warnings == [
        f"providers[0].diskimages[0].generate-password: {REJECTED}",
        f"providers[0].diskimages[0].password: {REJECTED}",
    ]
    assert not any("hunter2" in w for w in result.warnings)
    image = result.config.providers["az-1"].diskimages["jammy"]
    assert (image.settings["password"], image.settings["generate-password"]) \
        == ("hunter2", True)


def test_static_ssh_port_is_deprecated_and_loader_only(valid_config, change):
    data = valid_config("static")
    change(data, "providers[0].pools[0].nodes[0].ssh-port", 2022)
    result = validate_data(data)
    assert result.warnings == [
        "providers[0].pools[0].nodes[0].ssh-port: deprecated, use "
        f"connection-port; {REJECTED}"]
    node = result.config.providers["static-1"].pools["main"].nodes[0]
    assert node.connection_port == 2022


def test_top_level_diskimage_shell_type(valid_config, change):
    data = valid_config("aws")
    change(data, "diskimages[0].shell-type", "csh")
    result = validate_data(data)
    assert result.warnings == [f"diskimages[0].shell-type: {REJECTED}"]
    assert result.config.diskimages["jammy"].shell_type == "csh"


def test_one_warning_per_occurrence_and_warnings_survive_errors(
        valid_config, change):
    data = valid_config("static", "static")
    change(data, "providers[1].name", "static-2")
    for provider in (0, 1):
        change(data, f"providers[{provider}].pools[0].nodes[0].ssh-port", 22)
    change(data, "providers[1].pools[0].nodes[0].timeout", "slow")
    result = validate_data(data)
    assert result.errors == [
        "providers[1].pools[0].nodes[0].timeout: expected int"]
    assert [w.split(":")[0] for w in result.warnings] == [
        "providers[0].pools[0].nodes[0].ssh-port",
        "providers[1].pools[0].nodes[0].ssh-port"]
    assert result.config is None


@pytest.mark.parametrize("key", ["use-internal-ip", "public-ipv4"])
def test_loader_only_keys_still_type_checked(valid_config, change, key):
    data = valid_config("aws")
    change(data, f"providers[0].{key}", "yes")
    assert validate_data(data).errors == [
        f"providers[0].{key}: expected bool"]


def test_warnings_from_files(write_yaml, valid_config, change):
    data = valid_config("static")
    change(data, "providers[0].pools[0].nodes[0].ssh-port", 22)
    result = validate_config(write_yaml(data))
    assert result.errors == []
    assert len(result.warnings) == 1
    config = config_from_dict(data)
    assert len(config.warnings) == 1
