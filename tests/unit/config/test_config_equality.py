"""Configs compare by value: hot reload restarts only changed providers."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from nodepool.config import Config, config_from_dict, load_config

ALL = ("aws", "openstack", "azure", "static")


def test_same_file_loaded_twice_is_equal(write_yaml, valid_config):
    path = write_yaml(valid_config(*ALL))
    first, second = load_config(path), load_config(path)
    assert first is not second
    assert first == second
    for name in first.providers:
        assert first.providers[name] == second.providers[name]


def test_changed_label_makes_only_its_provider_unequal(valid_config,
                                                       change):
    data = valid_config(*ALL)
    before = config_from_dict(data)
    edited = copy.deepcopy(data)
    change(edited, "providers[0].pools[0].labels[0].instance-type",
           "t3.xlarge")
    after = config_from_dict(edited)
    assert before != after
    assert before.providers["aws-east"] != after.providers["aws-east"]
    for name in ("os-1", "az-1", "static-1"):
        assert before.providers[name] == after.providers[name]


@pytest.mark.parametrize("path,value,changed", [
    ("providers[1].cloud-images[0].image-name", "Ubuntu 24.04", {"os-1"}),
    ("providers[2].pools[0].max-servers", 6, {"az-1"}),
    ("providers[3].pools[0].nodes[0].max-parallel-jobs", 2, {"static-1"}),
    ("providers[0].priority", 1, {"aws-east"}),
    # Inherited by the providers uploading this diskimage (aws, openstack).
    ("diskimages[0].username", "builder", {"aws-east", "os-1"}),
])
def test_each_setting_is_part_of_the_value(valid_config, change, path,
                                           value, changed):
    data = valid_config(*ALL)
    before = config_from_dict(data)
    after = config_from_dict(change(copy.deepcopy(data), path, value))
    unequal = {name for name in before.providers
               if before.providers[name] != after.providers[name]}
    assert unequal == changed


def test_top_level_change_keeps_providers_equal(valid_config, change):
    data = valid_config(*ALL)
    before = config_from_dict(data)
    after = config_from_dict(change(copy.deepcopy(data),
                                    "labels[0].min-ready", 3))
    assert before != after
    assert before.providers == after.providers


def test_warnings_do_not_affect_equality(valid_config):
    plain = config_from_dict(valid_config("static"))
    warned = dataclasses.replace(plain, warnings=("something",))
    assert plain == warned


def test_config_objects_are_frozen(valid_config):
    config = config_from_dict(valid_config("static"))
    assert isinstance(config, Config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_hold_age = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.providers["static-1"].name = "x"  # type: ignore[misc]


def test_input_dict_is_not_modified_or_aliased(valid_config):
    data = valid_config("aws")
    snapshot = copy.deepcopy(data)
    config = config_from_dict(data, {"zookeeper-servers": [{"host": "z"}]})
    assert data == snapshot
    data["providers"][0]["pools"][0]["labels"][0]["tags"] = {"x": 1}
    assert config.providers["aws-east"].pools["main"].labels[
        "small"].settings["tags"] == {}
