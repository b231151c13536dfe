"""The adapter contract: every verb answers, and the core stays behind it.

A minimal adapter (the three verbs every driver must implement) gets a
meaningful answer from every other verb; no adapter of the tree raises
``NotImplementedError`` from a verb; the static driver imports nothing of
the launcher and the launcher names no driver nor probes an adapter for a
contract verb (``getattr``).  The source checks read the code (AST), so a
regression fails here whatever the functional tests happen to run.
"""

from __future__ import annotations

import ast
import os
from types import SimpleNamespace

import pytest

from nodepool.driver import errors
from nodepool.driver.adapter import REGISTERED_NODE_LAUNCHER, Adapter
from nodepool.driver.instance import Resource
from nodepool.driver.quota import Quota
from nodepool.driver.static.adapter import StaticAdapter
from nodepool.zk.models import Node

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
PACKAGE = os.path.join(ROOT, "nodepool")


class Minimal(Adapter):
    def create_machine(self, spec):
        raise AssertionError("not called here")

    def delete_machine(self, external_id, immediate=False):
        raise AssertionError("not called here")

    def list_instances(self):
        return []


def provider(name="p", driver="x"):
    return SimpleNamespace(name=name, driver=driver, pools={})


def node(launcher):
    n = Node()
    n.launcher = launcher
    return n


def sources(*parts):
    top = os.path.join(PACKAGE, *parts)
    for directory, _, files in os.walk(top):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT), ast.parse(f.read())


# -- defaults ------------------------------------------------------------------

def test_every_optional_verb_has_a_meaningful_default():
    adapter = Minimal(provider())
    pool = SimpleNamespace(name="main")
    label = SimpleNamespace(name="small")
    asked = []
    assert adapter.launches_nodes is True
    assert adapter.console_log("i-1") is None
    assert adapter.delete_resource(Resource("volumes", "v-1", {})) is None
    assert list(adapter.list_resources()) == []
    assert adapter.find_instances("0000000001") == []
    assert adapter.quota_limits() == Quota.unlimited()
    assert adapter.label_quota(label) == Quota(instances=1)
    assert adapter.availability_zones(pool) == []
    assert adapter.offering(pool, label) == "main/small"
    assert adapter.image_available(label) is True
    assert adapter.label_usable(label) is True
    assert adapter.register_nodes(SimpleNamespace()) is None
    assert adapter.node_deleted(node("pool-worker")) is None
    # A launching driver never needs the pool's records to say yes.
    assert adapter.has_capacity_now(
        pool, SimpleNamespace(node_types=["small"]),
        lambda: asked.append(1) or []) is True
    assert asked == []


def test_default_owns_launched_nodes_and_static_owns_registered_ones():
    launched = node("nl01-1234-PoolWorker.p-main-abcd")
    registered = node(REGISTERED_NODE_LAUNCHER)
    cloud = Minimal(provider())
    static = StaticAdapter(provider("s", "static"))
    assert cloud.owns(launched) and not cloud.owns(registered)
    assert static.owns(registered) and not static.owns(launched)


def test_static_create_machine_refuses_with_a_configuration_error():
    static = StaticAdapter(provider("s", "static"))
    assert static.launches_nodes is False
    machine = static.create_machine(SimpleNamespace(
        label=SimpleNamespace(name="static-label")))
    with pytest.raises(errors.ConfigurationError) as exc:
        machine.advance()
    assert str(exc.value) == ("static provider s launches nothing: label "
                              "static-label is served by its registered "
                              "hosts only")
    assert static.delete_machine("host1").advance() is True


def test_static_adapter_without_its_board_hands_out_nothing():
    """``nodepool delete --now`` builds an adapter the launcher never
    started: no sync thread, nothing to hand out, stop is harmless."""
    static = StaticAdapter(provider("s", "static"))
    static.start()
    assert static.slots is None
    assert static.has_capacity_now(
        SimpleNamespace(name="main", nodes=[]),
        SimpleNamespace(node_types=["static-label"]), lambda: []) is False
    static.node_deleted(node(REGISTERED_NODE_LAUNCHER))
    static.stop()


# -- the source ------------------------------------------------------------------

def _raises_not_implemented(tree) -> list[int]:
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Raise)
            and n.exc is not None and "NotImplementedError" in ast.dump(
                n.exc)]


def _adapter_classes(tree):
    for n in ast.walk(tree):
        if isinstance(n, ast.ClassDef) and (n.name == "Adapter" or any(
                isinstance(b, ast.Name) and b.id.endswith("Adapter")
                for b in n.bases)):
            yield n


def test_no_adapter_verb_raises_not_implemented():
    found = [f"{path}:{cls.name}:{line}"
             for path, tree in sources("driver")
             for cls in _adapter_classes(tree)
             for line in _raises_not_implemented(cls)]
    assert found == []


def test_no_driver_module_imports_the_launcher():
    upward = []
    for path, tree in sources("driver"):
        for n in ast.walk(tree):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import)
                     else [n.module or ""] if isinstance(n, ast.ImportFrom)
                     else [])
            upward += [f"{path}: {name}" for name in names
                       if name.split(".")[:2] in (["nodepool", "launcher"],
                                                  ["nodepool", "web"],
                                                  ["nodepool", "cmd"])]
    assert upward == []


CONTRACT = {name for name in dir(Adapter) if not name.startswith("_")} | {
    "manager_class"}


def test_the_core_neither_probes_adapters_nor_names_a_driver():
    found = []
    for part in ("launcher", "web"):
        for path, tree in sources(part):
            for n in ast.walk(tree):
                if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                        and n.func.id in ("getattr", "hasattr")
                        and len(n.args) > 1
                        and isinstance(n.args[1], ast.Constant)
                        and n.args[1].value in CONTRACT):
                    found.append(f"{path}:{n.lineno}: {n.func.id} "
                                 f"{n.args[1].value}")
                if part != "launcher":
                    continue   # the web app serves a static/ directory
                if isinstance(n, ast.Name) and n.id.startswith("Static"):
                    found.append(f"{path}:{n.lineno}: {n.id}")
                if (isinstance(n, ast.Constant) and n.value in (
                        "static", REGISTERED_NODE_LAUNCHER)):
                    found.append(f"{path}:{n.lineno}: {n.value!r}")
    assert found == []
