"""Every shipped example config in etc/ validates and uses mutual TLS."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from nodepool.config import load_config, validate_config

ETC = pathlib.Path(__file__).resolve().parents[3] / "etc"
MAIN_FILES = sorted(p for p in ETC.glob("*.yaml") if p.name != "secure.yaml")


def test_examples_exist():
    names = {p.name for p in ETC.glob("*.yaml")}
    assert {"nodepool.yaml", "nodepool-aws.yaml", "nodepool-openstack.yaml",
            "nodepool-azure.yaml", "nodepool-static.yaml",
            "secure.yaml"} <= names


# What tools/demo.py puts in the environment for etc/nodepool-demo.yaml.
DEMO_ENV = {"NODEPOOL_DEMO_ZK_PORT": "2281",
            "NODEPOOL_DEMO_ZK_CERT": "/tmp/demo/client.pem",
            "NODEPOOL_DEMO_ZK_KEY": "/tmp/demo/client.key",
            "NODEPOOL_DEMO_ZK_CA": "/tmp/demo/ca.pem",
            "NODEPOOL_DEMO_WEB_PORT": "8005",
            "NODEPOOL_DEMO_AMI": "ami-12345678",
            "NODEPOOL_DEMO_SUBNET": "subnet-12345678",
            "NODEPOOL_DEMO_SECURITY_GROUP": "sg-12345678",
            "NODEPOOL_DEMO_KEY_NAME": "demo-key",
            "NODEPOOL_DEMO_SSH_PORT": "2222"}


@pytest.mark.parametrize("path", MAIN_FILES, ids=lambda p: p.name)
def test_example_validates_cleanly(path):
    # secure.yaml belongs to the multi-provider example.
    secure = ETC / "secure.yaml" if path.name == "nodepool.yaml" else None
    result = validate_config(str(path), secure and str(secure), env=DEMO_ENV)
    assert (result.errors, result.warnings) == ([], [])
    assert result.config.zookeeper_tls is not None
    assert result.config.providers


@pytest.mark.parametrize("path", sorted(ETC.glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_file_contains_zookeeper_tls(path):
    text = path.read_text()
    for name, value in DEMO_ENV.items():
        text = text.replace(f"%({name})", value)
    assert "zookeeper-tls" in yaml.safe_load(text)


def test_multi_provider_example_covers_every_driver():
    config = load_config(str(ETC / "nodepool.yaml"), str(ETC / "secure.yaml"),
                         env={"NODEPOOL_REG_PASSWORD": "pw"})
    assert {p.driver for p in config.providers.values()} == {
        "aws", "openstack", "azure", "static"}
    assert config.diskimages["ubuntu-jammy"].env_vars["REG_PASSWORD"] == "pw"
    assert config.zookeeper_servers[0].host == "zk01.internal.example.com"
