"""``nodepool erase`` refuses while the provider is in service: a
registered launcher serves it, or any of its nodes is locked or in use;
``--force`` only skips the question.  Run against real ZooKeeper, with
components and locks made the way launchers and Zuul make them."""

from __future__ import annotations

import io
import json

import pytest

from nodepool.cmd.nodepoolcmd import main
from nodepool.driver import fake
from nodepool.zk import Node, NodeState, PoolComponent
from nodepool.zk.image import upload_path
from tests.functional.launcher.helpers import fake_provider

REFUSED = "Refusing to erase provider static-lab: "


def new_node(seed, provider="static-lab", state=NodeState.READY) -> Node:
    node = Node(state=state, provider=provider, type=["small"],
                external_id="ext-1")
    seed.store_node(node)
    return node


def seed_upload(zk, provider="static-lab") -> None:
    kazoo = zk.kazoo()
    kazoo.create(upload_path("ubuntu", "b1", provider) + "/",
                 json.dumps({"state": "ready"}).encode(), sequence=True,
                 makepath=True)
    kazoo.stop()


def pool_component(provider: str, name="main",
                   hostname="launcher-a") -> PoolComponent:
    component = PoolComponent(hostname=hostname, state="running")
    component.name, component.provider_name = name, provider
    component.id = f"{hostname}-PoolWorker.{provider}-{name}-0"
    component.supported_labels = ["small"]
    return component


def assert_untouched(seed, nodes) -> None:
    for node in nodes:
        assert seed.get_node(node.id) is not None, node.id
    assert [u.provider for u in seed.iter_image_uploads()] == ["static-lab"]


@pytest.mark.parametrize("argv,stdin", [(["--force"], ""), ([], "y\n")])
def test_refuses_while_a_registered_launcher_serves_it(cli, seed, zk, argv,
                                                       stdin):
    node = new_node(seed)
    seed_upload(zk)
    seed.register_pool(pool_component("static-lab"))
    seed.register_pool(pool_component("other", hostname="launcher-b"))
    result = cli("erase", "static-lab", *argv, stdin=stdin)
    assert result.rc == 1
    assert result.out == ""             # refused before asking anything
    assert result.err == (
        f"{REFUSED}a running launcher serves it (pool main on launcher-a) "
        "-- stop it or remove the provider from its config first.  "
        "No data erased.\n")
    assert_untouched(seed, [node])


def test_a_launcher_of_another_provider_does_not_block(cli, seed):
    node = new_node(seed)
    seed.register_pool(pool_component("other"))
    result = cli("erase", "static-lab", "--force")
    assert (result.rc, result.err) == (0, "")
    assert seed.get_node(node.id) is None


@pytest.mark.parametrize("state,locked,said", [
    (NodeState.IN_USE, False, "in-use"),
    (NodeState.READY, True, "locked"),
    (NodeState.IN_USE, True, "in-use and locked"),
])
def test_refuses_while_a_node_is_locked_or_in_use(cli, seed, zk, state,
                                                  locked, said):
    idle = new_node(seed)
    busy = new_node(seed, state=state)
    seed_upload(zk)
    if locked:
        seed.lock_node(busy)
    result = cli("erase", "static-lab", "--force")
    assert result.rc == 1
    assert result.err == (
        f"{REFUSED}1 of its nodes is locked or in use ({busy.id} {said}) "
        "-- wait until they are released.  No data erased.\n")
    assert_untouched(seed, [idle, busy])
    if locked:
        seed.unlock_node(busy)


def test_many_busy_nodes_are_counted_and_a_few_named(cli, seed):
    busy = [new_node(seed, state=NodeState.IN_USE) for _ in range(30)]
    result = cli("erase", "static-lab", "--force")
    assert result.rc == 1
    assert result.err.count("\n") == 1
    assert "30 of its nodes are locked or in use" in result.err
    named = [n.id for n in busy if n.id in result.err]
    assert named == [n.id for n in busy[:5]]
    assert "and 25 more" in result.err
    assert all(seed.get_node(n.id) is not None for n in busy)


def test_both_reasons_are_named(cli, seed):
    node = new_node(seed, state=NodeState.IN_USE)
    seed.register_pool(pool_component("static-lab"))
    result = cli("erase", "static-lab", "--force")
    assert result.rc == 1 and result.err.count("\n") == 1
    assert "a running launcher serves it" in result.err
    assert f"({node.id} in-use)" in result.err


class AnswerAfter(io.StringIO):
    """stdin whose answer comes after ``meanwhile()`` ran: what changed
    while the operator read the question."""

    def __init__(self, answer: str, meanwhile):
        super().__init__(answer)
        self.meanwhile = meanwhile

    def readline(self, *args):
        self.meanwhile()
        return super().readline(*args)


def test_checks_again_after_the_operator_answers(seed, config_file, capsys):
    node = new_node(seed)
    stdin = AnswerAfter("y\n", lambda: seed.register_pool(
        pool_component("static-lab")))
    rc = main(["-c", config_file, "erase", "static-lab"], stdin=stdin)
    captured = capsys.readouterr()
    assert rc == 1
    assert "Erase ZooKeeper data for provider static-lab? [N/y] " \
        in captured.out
    assert "Erasing" not in captured.out
    assert captured.err.startswith(REFUSED) and "No data erased" in \
        captured.err
    assert seed.get_node(node.id) is not None


def test_hostname_with_control_characters_is_printed_escaped(cli, seed):
    # (ZooKeeper refuses such a name in a path; the record can carry it)
    component = pool_component("static-lab", hostname="evil\x1b]0;owned\x07")
    seed.kazoo.create("/nodepool/components/pool/evil-", component.to_json(),
                      ephemeral=True, sequence=True, makepath=True)
    result = cli("erase", "static-lab", "--force")
    assert result.rc == 1
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert "evil\\x1b]0;owned\\x07" in result.err


def test_the_issue_case_a_running_launcher_and_a_node_zuul_uses(
        env, capsys):
    """A configured, running provider with a node Zuul holds locked and
    in-use: ``erase --force`` used to remove the record, and the launcher
    then deleted the instance under the job as a leak."""
    env.write_config([fake_provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] \
        == "fulfilled"
    [node_id] = env.zuul.accept(rid)
    env.zuul.set_in_use([node_id])
    instances = set(fake.cloud_for("fake-provider").instances)
    rc = main(["-c", env.config_path, "erase", "fake-provider", "--force"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("Refusing to erase provider fake-provider: ")
    assert "a running launcher serves it (pool main on " in err
    assert f"({node_id} in-use and locked)" in err
    assert env.zuul.get_node(node_id)["state"] == "in-use"
    assert set(fake.cloud_for("fake-provider").instances) == instances
    # The launcher gone, the node still in use: still refused.
    for launcher in env.launchers:
        launcher.stop()
    rc = main(["-c", env.config_path, "erase", "fake-provider", "--force"])
    err = capsys.readouterr().err
    assert rc == 1 and "launcher" not in err
    assert f"({node_id} in-use and locked)" in err
    # Released by Zuul: now it may go.
    env.zuul.release([node_id])
    rc = main(["-c", env.config_path, "erase", "fake-provider", "--force"])
    assert rc == 0, capsys.readouterr().err
    assert env.zuul.get_node(node_id) is None
