"""The secure file (``-s``): which keys it overrides, and how (§1)."""

from __future__ import annotations

from nodepool.config import (
    ConfigError, ZooKeeperServer, ZooKeeperTLS, config_from_dict,
    load_config, validate_config)

import pytest


def _main(valid_config) -> dict:
    config = valid_config("openstack")
    config["diskimages"] = [
        {"name": "base", "abstract": True, "env-vars": {"A": "1"}},
        {"name": "jammy", "parent": "base", "env-vars": {"B": "2"}},
    ]
    return config


def test_secure_zookeeper_servers_replace_main_list(valid_config):
    secure = {"zookeeper-servers": [{"host": "zk-a", "port": 2181},
                                    {"host": "zk-b", "chroot": "/np"}]}
    config = config_from_dict(_main(valid_config), secure)
    assert config.zookeeper_servers == (
        ZooKeeperServer("zk-a", 2181), ZooKeeperServer("zk-b", 2281, "/np"))


def test_empty_secure_zookeeper_servers_keep_main_list(valid_config):
    config = config_from_dict(_main(valid_config), {"zookeeper-servers": []})
    assert config.zookeeper_servers == (ZooKeeperServer("zk1.example.com"),)


def test_secure_zookeeper_tls_replaces(valid_config):
    main = _main(valid_config)
    del main["zookeeper-tls"]
    assert config_from_dict(main).zookeeper_tls is None
    secure = {"zookeeper-tls": {"cert": "/s/c", "key": "/s/k", "ca": "/s/a"}}
    assert config_from_dict(main, secure).zookeeper_tls == \
        ZooKeeperTLS("/s/c", "/s/k", "/s/a")


def test_secure_env_vars_merge_into_named_diskimage(valid_config):
    secure = {"diskimages": [{"name": "jammy",
                              "env-vars": {"B": "secret", "C": "3"}}]}
    config = config_from_dict(_main(valid_config), secure)
    assert config.diskimages["jammy"].env_vars == {"A": "1", "B": "secret",
                                                   "C": "3"}
    assert config.diskimages["base"].env_vars == {"A": "1"}


def test_secure_unknown_or_abstract_diskimage_is_an_error(write_yaml,
                                                          valid_config):
    main = write_yaml(_main(valid_config))
    secure = write_yaml({"diskimages": [
        {"name": "focal", "env-vars": {}},
        {"name": "base", "env-vars": {"X": "y"}}]}, "secure.yaml")
    assert validate_config(main, secure).errors == [
        f"{secure}: diskimages[0].name: diskimage 'focal' is not a "
        "non-abstract top-level diskimage of the main config",
        f"{secure}: diskimages[1].name: diskimage 'base' is not a "
        "non-abstract top-level diskimage of the main config",
    ]


def test_secure_other_keys_are_ignored_and_empty_file_is_valid(
        write_yaml, valid_config):
    main = write_yaml(_main(valid_config))
    ignored = write_yaml({"providers": "nonsense", "labels": 5,
                          "webapp": {"port": 1}}, "ignored.yaml")
    empty = write_yaml("", "empty.yaml")
    baseline = load_config(main)
    assert load_config(main, ignored) == baseline
    assert load_config(main, empty) == baseline


def test_secure_file_errors_name_the_file(write_yaml, valid_config):
    main = write_yaml(_main(valid_config))
    secure = write_yaml({"zookeeper-tls": {"cert": "/c", "key": "/k"},
                         "zookeeper-servers": [{"host": 5}],
                         "diskimages": [{"name": "jammy"}]}, "secure.yaml")
    result = validate_config(main, secure)
    assert result.errors == [
        f"{secure}: diskimages[0].env-vars: required key not provided",
        f"{secure}: zookeeper-servers[0].host: expected str",
        f"{secure}: zookeeper-tls.ca: required key not provided",
    ]
    listing = write_yaml("- a\n", "list.yaml")
    assert validate_config(main, listing).errors == [
        f"{listing}: expected a dictionary"]


def test_secure_environment_substitution(write_yaml, valid_config):
    main = write_yaml(_main(valid_config))
    secure = write_yaml(
        "diskimages:\n  - name: jammy\n    env-vars:\n"
        "      TOKEN: '%(NODEPOOL_TOKEN)'\n", "secure.yaml")
    config = load_config(main, secure, env={"NODEPOOL_TOKEN": "t0k"})
    assert config.diskimages["jammy"].env_vars["TOKEN"] == "t0k"


def test_secure_errors_raise_config_error(valid_config):
    with pytest.raises(ConfigError) as info:
        config_from_dict(_main(valid_config), {"zookeeper-tls": {}})
    assert "<secure>: zookeeper-tls.cert: required key not provided" in \
        info.value.errors
