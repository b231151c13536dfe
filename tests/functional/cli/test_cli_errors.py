"""Exit status and one-line messages of cli.md §1.3, ``delete --now``,
``erase`` and ``config-validate``."""

import json
import socket
import time

import pytest

import nodepool.launcher
from nodepool.cmd.nodepoolcmd import main
from nodepool.version import __version__
from nodepool.zk import Node, NodeState
from nodepool.zk.image import upload_path


def new_node(seed, provider="static-lab", state=NodeState.READY):
    node = Node(state=state, provider=provider, type=["small"],
                external_id="ext-1")
    seed.store_node(node)
    return node


@pytest.mark.parametrize("command", ["hold", "delete"])
def test_unknown_node_id(cli, command):
    result = cli(command, "0000009999")
    assert result.rc == 1
    assert result.err == "Node id 0000009999 not found\n"
    assert result.out == ""


def test_locked_node_fails_after_five_seconds_unchanged(cli, seed):
    node = new_node(seed)
    seed.lock_node(node)
    start = time.monotonic()
    result = cli("hold", node.id)
    elapsed = time.monotonic() - start
    assert result.rc == 1
    assert 4.5 <= elapsed < 9
    assert result.err.count("\n") == 1
    assert node.id in result.err and "locked" in result.err
    assert seed.get_node(node.id).state == NodeState.READY
    assert len(seed.lock_holders(node)) == 1  # only the holder's


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_zookeeper_down_is_one_line_within_the_timeout(cli, zk,
                                                       make_config):
    section = zk.config(tls=True)
    section["zookeeper-servers"][0]["port"] = closed_port()
    config = make_config(section, timeout=2.0)
    start = time.monotonic()
    result = cli("list", config=config)
    assert time.monotonic() - start < 6
    assert result.rc == 1
    assert result.err.count("\n") == 1 and "unreachable" in result.err
    assert "Traceback" not in result.err


def test_invalid_config_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: 3\n")
    result = cli("list", config=str(bad))
    assert result.rc == 1
    assert result.err.count("\n") == 1
    assert "invalid configuration" in result.err


def test_no_command_prints_help_and_exits_1(capsys):
    assert main([]) == 1
    assert "usage: nodepool" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["frobnicate"], ["hold"],
                                  ["list", "--bogus"]])
def test_bad_arguments_exit_2_with_usage_on_stderr(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "usage: nodepool" in captured.err and captured.out == ""


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"Nodepool version: {__version__}\n"


def test_delete_now_for_foreign_provider(cli, seed):
    node = new_node(seed, provider="elsewhere")
    result = cli("delete", node.id, "--now")
    assert result.rc == 1
    assert result.err == (f"Provider elsewhere for node {node.id} not "
                          "defined on this launcher\n")
    assert seed.get_node(node.id).state == NodeState.READY
    assert not seed.is_locked(node, cached=False)


def test_delete_now_removes_the_node_before_returning(cli, seed,
                                                      monkeypatch):
    node = new_node(seed)
    calls = []

    def delete_now(config, provider, locked_node):
        # The CLI holds the lock and has marked the node deleting.
        assert seed.is_locked(locked_node, cached=False)
        assert seed.get_node(locked_node.id).state == NodeState.DELETING
        calls.append((provider.name, locked_node.external_id))
    monkeypatch.setattr(nodepool.launcher, "delete_now", delete_now,
                        raising=False)
    result = cli("delete", node.id, "--now")
    assert (result.rc, result.err) == (0, "")
    assert calls == [("static-lab", "ext-1")]
    assert seed.get_node(node.id) is None
    assert seed.kazoo.exists(f"/nodepool/nodes/{node.id}") is None
    assert node.id in result.out


def test_delete_now_failure_leaves_node_deleting(cli, seed, monkeypatch):
    node = new_node(seed)

    def delete_now(config, provider, locked_node):
        raise RuntimeError("cloud says no")
    monkeypatch.setattr(nodepool.launcher, "delete_now", delete_now,
                        raising=False)
    result = cli("delete", node.id, "--now")
    assert result.rc == 1 and "cloud says no" in result.err
    assert seed.get_node(node.id).state == NodeState.DELETING
    assert not seed.is_locked(node, cached=False)


def seed_for_erase(seed, zk):
    kazoo = zk.kazoo()
    for provider in ("static-lab", "other"):
        kazoo.create(upload_path("ubuntu", "b1", provider) + "/",
                     json.dumps({"state": "ready"}).encode(),
                     sequence=True, makepath=True)
    kazoo.stop()
    return new_node(seed), new_node(seed, provider="other")


def test_erase_asks_and_aborts(cli, seed, zk):
    mine, _ = seed_for_erase(seed, zk)
    result = cli("erase", "static-lab", stdin="n\n")
    assert result.rc == 0
    assert result.out == (
        "\nWARNING! This action is not reversible!\n"
        "Erase ZooKeeper data for provider static-lab? [N/y] "
        "Aborting. No data erased.\n")
    assert seed.get_node(mine.id) is not None


@pytest.mark.parametrize("argv,stdin", [(["--force"], ""), ([], "y\n")])
def test_erase_removes_only_that_provider(cli, seed, zk, argv, stdin):
    mine, theirs = seed_for_erase(seed, zk)
    result = cli("erase", "static-lab", *argv, stdin=stdin)
    assert result.rc == 0
    assert result.out.endswith("Erasing build data for static-lab...\n"
                               "Erasing node data for static-lab...\n")
    assert seed.get_node(mine.id) is None
    assert seed.get_node(theirs.id) is not None
    assert [u.provider for u in seed.iter_image_uploads()] == ["other"]


def test_config_validate(cli, config_file, tmp_path):
    good = cli("config-validate")
    assert (good.rc, good.err) == (0, "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels:\n  - name: small\n    bogus: 1\n")
    result = cli("config-validate", config=str(bad))
    assert result.rc == 1
    assert "labels[0].bogus: extra keys not allowed" in result.err
