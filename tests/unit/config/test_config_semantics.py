"""Configs that validate must not break or destroy anything later.

Unique names, usable numbers (rates, timeouts, ports; booleans are not
numbers), duplicate YAML keys and parse failures that name the file.  Each
rejected case lists the complete expected error lines; each accepted case
shows the boundary the rule keeps open (what upstream accepts and means).
"""

from __future__ import annotations

import pytest

from nodepool.config import ConfigError, load_config, validate_config
from nodepool.config.loader import MAX_DEPTH
from nodepool.config.validate import validate_data

P0, P1 = "providers[0]", "providers[1]"
POOL = "providers[0].pools[0]"
NODE = "providers[0].pools[0].nodes[0]"
NAN, INF = float("nan"), float("inf")
SECOND_POOL = {"name": "main", "max-servers": 1, "labels": [
    {"name": "small", "cloud-image": "ubuntu", "flavor-name": "m1.small"}]}

# (id, drivers, edits, expected lines); an edit is (path, value).
REJECTED = [
    # -- unique names ---------------------------------------------------------
    ("provider-name-twice", ["aws", "static"],
     [(f"{P1}.name", "aws-east")],
     [f"{P1}.name: duplicate provider 'aws-east' (first at providers[0])"]),
    ("pool-name-twice", ["openstack"], [(f"{P0}.pools[1]", SECOND_POOL)],
     [f"{P0}.pools[1].name: duplicate pool 'main' in provider 'os-1' "
      f"(first at {P0}.pools[0])"]),
    ("label-name-twice", ["static"], [("labels[2]", {"name": "small"})],
     ["labels[2].name: duplicate label 'small' (first at labels[0])"]),
    ("pool-label-twice", ["aws"], [(f"{POOL}.labels[1].name", "small")],
     [f"{POOL}.labels[1].name: duplicate label 'small' in this pool (first "
      f"at {POOL}.labels[0])"]),
    # -- rates ------------------------------------------------------------------
    ("aws-rate-negative", ["aws"], [(f"{P0}.rate", -5)],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    ("aws-rate-nan", ["aws"], [(f"{P0}.rate", NAN)],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    ("aws-rate-inf", ["aws"], [(f"{P0}.rate", INF)],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    ("aws-rate-bool", ["aws"], [(f"{P0}.rate", True)],
     [f"{P0}.rate: expected float, got a boolean"]),
    ("openstack-rate-nan-string", ["openstack"], [(f"{P0}.rate", "nan")],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    ("openstack-rate-negative-string", ["openstack"], [(f"{P0}.rate", "-1")],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    ("azure-rate-inf", ["azure"], [(f"{P0}.rate", INF)],
     [f"{P0}.rate: expected a finite number, 0 or more"]),
    # -- timeouts ---------------------------------------------------------------
    ("boot-timeout-zero", ["aws"], [(f"{P0}.boot-timeout", 0)],
     [f"{P0}.boot-timeout: expected an int greater than 0"]),
    ("launch-timeout-negative", ["openstack"],
     [(f"{P0}.launch-timeout", -1)],
     [f"{P0}.launch-timeout: expected an int greater than 0"]),
    ("zookeeper-timeout-nan", ["static"], [("zookeeper-timeout", NAN)],
     ["zookeeper-timeout: expected a finite float greater than 0"]),
    ("zookeeper-timeout-inf", ["static"], [("zookeeper-timeout", INF)],
     ["zookeeper-timeout: expected a finite float greater than 0"]),
    ("zookeeper-timeout-zero", ["static"], [("zookeeper-timeout", 0.0)],
     ["zookeeper-timeout: expected a finite float greater than 0"]),
    ("static-timeout-zero", ["static"], [(f"{NODE}.timeout", 0)],
     [f"{NODE}.timeout: expected an int greater than 0"]),
    ("aws-image-import-timeout", ["aws"],
     [(f"{P0}.image-import-timeout", -3)],
     [f"{P0}.image-import-timeout: expected an int greater than 0"]),
    # -- ports ------------------------------------------------------------------
    ("webapp-port-too-big", ["static"], [("webapp", {"port": 99999})],
     ["webapp.port: expected a port number from 1 to 65535"]),
    ("webapp-port-zero", ["static"], [("webapp", {"port": 0})],
     ["webapp.port: expected a port number from 1 to 65535"]),
    ("zookeeper-port", ["static"], [("zookeeper-servers[0].port", 70000)],
     ["zookeeper-servers[0].port: expected a port number from 1 to 65535"]),
    ("cloud-image-port", ["aws"],
     [(f"{P0}.cloud-images[0].connection-port", -22)],
     [f"{P0}.cloud-images[0].connection-port: expected a port number from "
      "1 to 65535"]),
    ("static-node-port", ["static"], [(f"{NODE}.connection-port", 65536)],
     [f"{NODE}.connection-port: expected a port number from 1 to 65535"]),
    # -- booleans are not numbers -------------------------------------------------
    ("max-servers-true", ["aws"], [(f"{POOL}.max-servers", True)],
     [f"{POOL}.max-servers: expected int, got a boolean"]),
    ("min-ready-false", ["static"], [("labels[0].min-ready", False)],
     ["labels[0].min-ready: expected int, got a boolean"]),
    ("max-resources-true", ["aws"], [(f"{P0}.max-resources", {"L-1": True})],
     [f"{P0}.max-resources.L-1: expected int, got a boolean"]),
    ("tenant-limit-true", ["static"],
     [("tenant-resource-limits", [{"tenant-name": "t", "max-cores": True}])],
     ["tenant-resource-limits[0].max-cores: expected int, got a boolean"]),
    ("webapp-port-true", ["static"], [("webapp", {"port": True})],
     ["webapp.port: expected int, got a boolean"]),
]

# Boundaries: upstream accepts these and they mean something.
ACCEPTED = [
    ("rate-zero-is-unlimited", ["aws", "openstack", "azure"],
     [(f"{P0}.rate", 0), (f"{P1}.rate", "0"), ("providers[2].rate", 0.0)]),
    ("rate-numeric-string", ["openstack"], [(f"{P0}.rate", "0.5")]),
    ("port-bounds", ["static"],
     [("webapp", {"port": 65535}), ("zookeeper-servers[0].port", 1)]),
    ("negative-limits-disable", ["aws"],
     [(f"{POOL}.max-servers", -1), ("labels[0].min-ready", -1),
      (f"{P0}.max-concurrency", -1)]),
    # One label in several pools, one pool name in several providers.
    ("same-names-in-other-scopes", ["aws", "openstack"], []),
]


def _apply(config, edits, change):
    for edit in edits:
        change(config, *edit)
    return config


@pytest.mark.parametrize("drivers,edits,expected",
                         [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_rejected(drivers, edits, expected, valid_config, change):
    result = validate_data(_apply(valid_config(*drivers), edits, change))
    assert result.errors == expected
    assert result.config is None


@pytest.mark.parametrize("drivers,edits", [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_accepted(drivers, edits, valid_config, change):
    result = validate_data(_apply(valid_config(*drivers), edits, change))
    assert result.errors == []
    assert result.config is not None


def test_duplicate_provider_of_another_driver_names_both(valid_config,
                                                         change):
    # The case found broken: an AWS and a static provider of one name.
    config = valid_config("aws", "openstack", "static")
    change(config, "providers[2].name", "aws-east")
    change(config, "providers[1].pools[0].name", "main")
    result = validate_data(config)
    assert result.errors == [
        "providers[2].name: duplicate provider 'aws-east' (first at "
        "providers[0])"]


def test_start_and_reload_run_the_same_checks(write_yaml, valid_config,
                                              change):
    # load_config is what the launcher calls at start and on every reload.
    config = valid_config("aws")
    change(config, "providers[0].rate", -5)
    change(config, "webapp", {"port": 99999})
    with pytest.raises(ConfigError) as exc:
        load_config(write_yaml(config))
    assert exc.value.errors == [
        "providers[0].rate: expected a finite number, 0 or more",
        "webapp.port: expected a port number from 1 to 65535"]


def test_launcher_start_refuses_the_config(write_yaml, valid_config,
                                           change):
    from nodepool.launcher.launcher import Launcher
    config = valid_config("aws", "static")
    change(config, "providers[1].name", "aws-east")
    launcher = Launcher(write_yaml(config))
    try:
        with pytest.raises(ConfigError) as exc:
            launcher.start()
    finally:
        launcher.keyscan_pool.shutdown()
    assert exc.value.errors == [
        "providers[1].name: duplicate provider 'aws-east' (first at "
        "providers[0])"]
    assert launcher.client is None     # nothing was connected


# -- YAML --------------------------------------------------------------------

DUPLICATE_KEY = """\
labels:
  - name: small
    min-ready: 1
    min-ready: 2
"""


def test_duplicate_yaml_key_names_both_lines(write_yaml):
    path = write_yaml(DUPLICATE_KEY)
    assert validate_config(path).errors == [
        f"{path}:4:5: duplicate key 'min-ready' (first at line 3, column 5)"]


def test_duplicate_top_level_key(write_yaml):
    path = write_yaml("labels: []\nproviders: []\nlabels:\n  - name: x\n")
    assert validate_config(path).errors == [
        f"{path}:3:1: duplicate key 'labels' (first at line 1, column 1)"]


def test_duplicate_key_in_secure_file_names_it(write_yaml, valid_config):
    main = write_yaml(valid_config("static"))
    secure = write_yaml("zookeeper-tls: {cert: a, key: b, ca: c, key: d}\n",
                        name="secure.yaml")
    assert validate_config(main, secure).errors == [
        f"{secure}:1:41: duplicate key 'key' (first at line 1, column 26)"]


def test_merge_keys_may_be_overridden(write_yaml, valid_config):
    # ``<<`` brings defaults in; overriding them is what YAML intends.
    path = write_yaml("""\
labels:
  - &base {name: small, min-ready: 1}
  - {<<: *base, name: large}
""")
    config = load_config(path)
    assert config.labels["large"].min_ready == 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_nesting_names_the_file(write_yaml, depth):
    # The root mapping is one level, each "[" another.
    path = write_yaml("labels: " + "[" * depth + "]" * depth + "\n")
    assert validate_config(path).errors == [
        f"{path}:1:{9 + MAX_DEPTH - 1}: nesting deeper than {MAX_DEPTH} "
        "levels"]


def test_nesting_at_the_limit_is_read(write_yaml):
    path = write_yaml("labels: " + "[" * (MAX_DEPTH - 1)
                      + "]" * (MAX_DEPTH - 1) + "\n")
    # Read fine; the schema then rejects the shape.
    assert validate_config(path).errors == ["labels[0]: expected a "
                                            "dictionary"]


def test_unconstructable_value_names_the_file(write_yaml):
    path = write_yaml("labels:\n  - name: small\n    min-ready: 2026-13-45\n")
    assert validate_config(path).errors == [
        f"{path}:3:16: invalid timestamp value"]
