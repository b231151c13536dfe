"""Reading files: environment substitution, missing-file retry, mtimes."""

from __future__ import annotations

import os

import pytest

from nodepool.config import (
    ConfigError, config_mtimes, load_config, substitute_env, validate_config)
from nodepool.config.loader import MISSING_FILE_RETRIES, RETRY_DELAY

STATIC = """
zookeeper-servers:
  - host: %(NODEPOOL_ZK_HOST)
    port: 2281
zookeeper-tls:
  cert: /c
  key: /k
  ca: /a
labels:
  - name: small
providers:
  - name: %(NODEPOOL_PROVIDER)
    driver: static
    pools:
      - name: main
        nodes:
          - name: host1
            labels: small
            username: "%(HOME)"
            python-path: "%(NODEPOOL_UNSET)"
"""


def test_substitute_env_only_replaces_set_nodepool_variables():
    env = {"NODEPOOL_A": "one", "HOME": "/root", "NODEPOOL_B": "%(X)"}
    text = "%(NODEPOOL_A) %(HOME) %(NODEPOOL_C) %(NODEPOOL_B) %(NODEPOOL_A)"
    assert substitute_env(text, env) == \
        "one %(HOME) %(NODEPOOL_C) %(X) one"


def test_environment_substitution_in_main_file(write_yaml):
    path = write_yaml(STATIC)
    config = load_config(path, env={"NODEPOOL_ZK_HOST": "zk.example.com",
                                    "NODEPOOL_PROVIDER": "lab",
                                    "HOME": "/home/x"})
    assert config.zookeeper_servers[0].host == "zk.example.com"
    node = config.providers["lab"].pools["main"].nodes[0]
    # Non-NODEPOOL_ and unset variables stay verbatim.
    assert node.username == "%(HOME)"
    assert node.python_path == "%(NODEPOOL_UNSET)"


def test_environment_defaults_to_os_environ(write_yaml, monkeypatch):
    monkeypatch.setenv("NODEPOOL_ZK_HOST", "zk-from-env")
    monkeypatch.setenv("NODEPOOL_PROVIDER", "p")
    config = load_config(write_yaml(STATIC))
    assert config.zookeeper_servers[0].host == "zk-from-env"


def test_missing_file_is_retried_until_it_appears(tmp_path):
    path = tmp_path / "nodepool.yaml"
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:  # the editor finishes replacing the file
            path.write_text("labels: [{name: small}]\n")

    config = load_config(str(path), sleep=sleep)
    assert sleeps == [RETRY_DELAY, RETRY_DELAY]
    assert list(config.labels) == ["small"]


def test_missing_file_fails_after_three_retries(tmp_path):
    path = str(tmp_path / "absent.yaml")
    sleeps = []
    result = validate_config(path, sleep=sleeps.append)
    assert MISSING_FILE_RETRIES == 3
    assert sleeps == [0.5, 0.5, 0.5]
    assert result.errors == [f"{path}: file not found"]
    with pytest.raises(ConfigError) as info:
        load_config(path, sleep=lambda s: None)
    assert info.value.errors == [f"{path}: file not found"]


def test_missing_secure_file_is_reported(write_yaml, tmp_path):
    main = write_yaml("labels: []\n")
    secure = str(tmp_path / "secure.yaml")
    result = validate_config(main, secure, sleep=lambda s: None)
    assert result.errors == [f"{secure}: file not found"]


def test_both_files_broken_reports_both(write_yaml, tmp_path):
    main = write_yaml("labels: [\n")
    secure = str(tmp_path / "secure.yaml")
    errors = validate_config(main, secure, sleep=lambda s: None).errors
    assert len(errors) == 2
    assert errors[0].startswith(f"{main}:2:1: YAML syntax error:")
    assert errors[1] == f"{secure}: file not found"


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"labels: [\xff]\n")
    assert validate_config(str(path)).errors == [
        f"{path}: file is not valid UTF-8"]


def test_unreadable_file(tmp_path):
    # A directory can be stat'ed but not read as a file, even by root.
    assert validate_config(str(tmp_path)).errors == [
        f"{tmp_path}: can not read file: Is a directory"]


def test_config_mtimes_follow_both_files(write_yaml):
    main = write_yaml("labels: []\n")
    secure = write_yaml("{}\n", "secure.yaml")
    os.utime(main, ns=(1_000_000_000_123, 1_000_000_000_123))
    os.utime(secure, ns=(2_000_000_000_456, 2_000_000_000_456))
    assert config_mtimes(main, secure) == (1_000_000_000_123,
                                           2_000_000_000_456)
    os.utime(secure, ns=(2_000_000_000_457, 2_000_000_000_457))
    assert config_mtimes(main, secure) == (1_000_000_000_123,
                                           2_000_000_000_457)
    assert config_mtimes(main, None) == (1_000_000_000_123, None)
    assert config_mtimes(main + ".gone", None) == (None, None)
