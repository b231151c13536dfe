"""Config test fixtures: minimal valid configurations and a way to break them.

``valid_config(*drivers)`` returns a fresh dict holding one provider per
named driver (in that order); ``change(config, "providers[0].rate", v)``
sets a value by key path and ``change(config, path)`` deletes it, so each
bad-config test states its edits and the exact error lines it expects.
(Fixtures rather than an importable module: pytest runs with
``--import-mode=importlib``.)
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

TLS = {"cert": "/etc/nodepool/client.pem", "key": "/etc/nodepool/client.key",
       "ca": "/etc/nodepool/ca.pem"}

PROVIDERS: dict[str, dict] = {
    "aws": {
        "name": "aws-east", "driver": "aws", "region-name": "us-east-1",
        "cloud-images": [{"name": "ubuntu", "username": "ubuntu",
                          "image-id": "ami-1"}],
        "diskimages": [{"name": "jammy"}],
        "pools": [{"name": "main", "labels": [
            {"name": "small", "cloud-image": "ubuntu",
             "instance-type": "t3.small", "key-name": "zuul"},
            {"name": "large", "diskimage": "jammy",
             "instance-type": "t3.large", "key-name": "zuul"}]}],
    },
    "openstack": {
        "name": "os-1", "cloud": "mycloud",
        "cloud-images": [{"name": "ubuntu"}],
        "diskimages": [{"name": "jammy"}],
        "pools": [{"name": "main", "labels": [
            {"name": "small", "cloud-image": "ubuntu",
             "flavor-name": "m1.small"},
            {"name": "large", "diskimage": "jammy", "min-ram": 8192}]}],
    },
    "azure": {
        "name": "az-1", "driver": "azure", "location": "eastus",
        "resource-group": "nodes", "resource-group-location": "eastus",
        "auth-path": "/etc/nodepool/azure.json", "network": "vnet",
        "cloud-images": [{"name": "ubuntu", "username": "zuul",
                          "image-id": "/subscriptions/x/images/u"}],
        "pools": [{"name": "main", "max-servers": 5, "labels": [
            {"name": "small", "cloud-image": "ubuntu",
             "hardware-profile": {"vm-size": "Standard_B1s"}}]}],
    },
    "static": {
        "name": "static-1", "driver": "static",
        "pools": [{"name": "main", "nodes": [
            {"name": "host1.example.com", "labels": ["small"]}]}],
    },
}


def valid_config(*drivers: str) -> dict:
    return {
        "zookeeper-servers": [{"host": "zk1.example.com"}],
        "zookeeper-tls": dict(TLS),
        "labels": [{"name": "small"}, {"name": "large"}],
        "diskimages": [{"name": "jammy"}],
        "providers": [copy.deepcopy(PROVIDERS[d]) for d in drivers],
    }


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
DELETE = object()


def change(config: dict, path: str, value: Any = DELETE) -> dict:
    """Set (or delete) the value at ``path`` such as ``pools[0].name``."""
    keys = [int(i) if i else k for k, i in _PART.findall(path)]
    target = config
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    elif isinstance(target, list) and keys[-1] == len(target):
        target.append(value)
    else:
        target[keys[-1]] = value
    return config


@pytest.fixture(name="valid_config")
def valid_config_fixture():
    return valid_config


@pytest.fixture(name="change")
def change_fixture():
    return change


@pytest.fixture
def write_yaml(tmp_path):
    """Write a dict (or raw text) to a YAML file and return its path."""
    def write(content: Any, name: str = "nodepool.yaml") -> str:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(
            content, sort_keys=False)
        path.write_text(text)
        return str(path)
    return write
