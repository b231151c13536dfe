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


@pytest.mark.parametrize("path", MAIN_FILES, ids=lambda p: p.name)
def test_example_validates_cleanly(path):
    # secure.yaml belongs to the multi-provider example.
    secure = ETC / "secure.yaml" if path.name == "nodepool.yaml" else None
    result = validate_config(str(path), secure and str(secure))
    assert (result.errors, result.warnings) == ([], [])
    assert result.config.zookeeper_tls is not None
    assert result.config.providers


@pytest.mark.parametrize("path", sorted(ETC.glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_file_contains_zookeeper_tls(path):
    assert "zookeeper-tls" in yaml.safe_load(path.read_text())


def test_multi_provider_example_covers_every_driver():
    config = load_config(str(ETC / "nodepool.yaml"), str(ETC / "secure.yaml"),
                         env={"NODEPOOL_REG_PASSWORD": "pw"})
    assert {p.driver for p in config.providers.values()} == {
        "aws", "openstack", "azure", "static"}
    assert config.diskimages["ubuntu-jammy"].env_vars["REG_PASSWORD"] == "pw"
    assert config.zookeeper_servers[0].host == "zk01.internal.example.com"
