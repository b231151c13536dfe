"""Validation reports problems, it never crashes on odd data.

Deterministic pseudo-random edits replace values anywhere in valid configs
with values of the wrong shape; every result must be either a list of
``<path>: <message>`` errors or a built Config.
"""

from __future__ import annotations

import copy
import random

from nodepool.config.validate import validate_data

ODD_VALUES = [None, 0, -1, True, 1.5, "x", "", [], [1], ["a", None], {},
              {"name": "x"}, {"a": [1]}, {1: 2}, [{"name": ["n"]}]]


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _set(config, path, value):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def test_random_wrong_shapes_never_crash(valid_config):
    rng = random.Random(20240611)
    base = valid_config("aws", "openstack", "azure", "static")
    base["diskimages"].append({"name": "child", "parent": "jammy"})
    paths = [p for p in _paths(base) if p]
    outcomes = {"errors": 0, "config": 0}
    for _ in range(600):
        config = copy.deepcopy(base)
        for path in rng.sample(paths, rng.randint(1, 3)):
            try:
                _set(config, path, copy.deepcopy(rng.choice(ODD_VALUES)))
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit replaced a parent of this path
        result = validate_data(config)
        if result.errors:
            assert result.config is None
            assert all(": " in line for line in result.errors)
            outcomes["errors"] += 1
        else:
            assert result.config is not None
            outcomes["config"] += 1
    # Both outcomes occur, so the loop really exercised both paths.
    assert outcomes["errors"] > 50 and outcomes["config"] > 5, outcomes


def test_unhashable_names_are_errors_not_crashes(valid_config):
    config = valid_config("openstack")
    config["diskimages"][0]["name"] = ["jammy"]
    config["labels"][0]["name"] = {"n": 1}
    result = validate_data(config, {"diskimages": [
        {"name": "jammy", "env-vars": {}}]})
    assert "diskimages[0].name: expected str" in result.errors
    assert "labels[0].name: expected str" in result.errors
