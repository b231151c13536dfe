"""The ports of the cloud drivers stay true on both sides.

A machine (or call sender) gets its adapter typed as a small Protocol
(``nodepool/driver/<cloud>/ports.py``) instead of importing the adapter
module.  Nothing runs a type checker here, so these tests keep the
protocols honest: every member a machine reads of its adapter is declared
in its protocol (a new use must be added there, where it is visible), and
the adapter really has every member of every protocol it is handed as,
with the same parameters.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from typing import Protocol

import pytest

from nodepool.driver.aws import ports as aws_ports
from nodepool.driver.aws.adapter import AwsAdapter
from nodepool.driver.azure import ports as azure_ports
from nodepool.driver.azure.adapter import AzureAdapter
from nodepool.driver.openstack import ports as openstack_ports
from nodepool.driver.openstack.adapter import OpenStackAdapter

#: (module, class, the protocol it is handed its adapter as, the adapter)
USERS = [
    ("nodepool.driver.aws.create", "InstanceCreator",
     aws_ports.CreatorPort, AwsAdapter),
    ("nodepool.driver.aws.create", "AwsCreate",
     aws_ports.CreatePort, AwsAdapter),
    ("nodepool.driver.aws.dedicated", "DedicatedHostCreator",
     aws_ports.CallPort, AwsAdapter),
    ("nodepool.driver.aws.fleet", "FleetCreator",
     aws_ports.FleetPort, AwsAdapter),
    ("nodepool.driver.aws.delete", "Terminator",
     aws_ports.TerminatorPort, AwsAdapter),
    ("nodepool.driver.aws.delete", "AwsDelete",
     aws_ports.DeletePort, AwsAdapter),
    ("nodepool.driver.azure.create", "AzureCreate",
     azure_ports.CreatePort, AzureAdapter),
    ("nodepool.driver.azure.delete", "AzureDelete",
     azure_ports.DeletePort, AzureAdapter),
    ("nodepool.driver.openstack.create", "ServerCreator",
     openstack_ports.CreatorPort, OpenStackAdapter),
    ("nodepool.driver.openstack.create", "OpenStackCreate",
     openstack_ports.CreatePort, OpenStackAdapter),
    ("nodepool.driver.openstack.delete", "ServerDeleter",
     openstack_ports.DeleterPort, OpenStackAdapter),
    ("nodepool.driver.openstack.delete", "OpenStackDelete",
     openstack_ports.DeletePort, OpenStackAdapter),
    ("nodepool.driver.openstack.leaks", "LeakFinder",
     openstack_ports.LeakPort, OpenStackAdapter),
]
IDS = [f"{cls}-{port.__name__}" for _, cls, port, _ in USERS]


def protocol_members(proto: type) -> set[str]:
    """Attributes and methods a protocol declares, its bases' included."""
    names: set[str] = set()
    for klass in proto.__mro__:
        if klass in (object, Protocol) or not getattr(
                klass, "_is_protocol", False):
            continue
        names |= set(klass.__dict__.get("__annotations__", {}))
        names |= {n for n, v in klass.__dict__.items()
                  if callable(v) and not n.startswith("_")}
    return names


def _class_node(module_name: str, class_name: str) -> ast.ClassDef:
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node
    raise AssertionError(f"{module_name} has no class {class_name}")


def adapter_uses(module_name: str, class_name: str) -> set[str]:
    """Members the class reads of its adapter: ``self.adapter.X``, and
    ``adapter.X`` where ``adapter`` is the constructor's parameter or a
    local alias of ``self.adapter``."""
    used = set()
    for node in ast.walk(_class_node(module_name, class_name)):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id == "adapter":
            used.add(node.attr)
        elif (isinstance(value, ast.Attribute) and value.attr == "adapter"
              and isinstance(value.value, ast.Name)
              and value.value.id == "self"):
            used.add(node.attr)
    return used


def instance_attributes(cls: type) -> set[str]:
    """``self.X = ...`` targets in the methods of ``cls`` and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(
                        target.value, ast.Name) and target.value.id == "self":
                    names.add(target.attr)
    return names


@pytest.mark.parametrize("module,cls,port,adapter", USERS, ids=IDS)
def test_uses_nothing_beyond_its_port(module, cls, port, adapter):
    undeclared = adapter_uses(module, cls) - protocol_members(port)
    assert not undeclared, (
        f"{cls} reads {sorted(undeclared)} of its adapter, which "
        f"{port.__module__}.{port.__name__} does not declare")


@pytest.mark.parametrize("module,cls,port,adapter", USERS, ids=IDS)
def test_adapter_provides_the_port(module, cls, port, adapter):
    available = set(dir(adapter)) | instance_attributes(adapter)
    missing = protocol_members(port) - available
    assert not missing, f"{adapter.__name__} lacks {sorted(missing)}"
    for name in protocol_members(port):
        wanted = port.__dict__.get(name) or next(
            (k.__dict__[name] for k in port.__mro__ if name in k.__dict__),
            None)
        have = getattr(adapter, name, None)
        if not inspect.isfunction(wanted) or not inspect.isfunction(have):
            continue
        assert list(inspect.signature(have).parameters) == \
            list(inspect.signature(wanted).parameters), (
                f"{adapter.__name__}.{name} and {port.__name__}.{name} "
                "take different parameters")


def test_every_port_is_used():
    """A protocol no machine is checked against would drift unseen."""
    checked = {port for _, _, port, _ in USERS}
    for module in (aws_ports, azure_ports, openstack_ports):
        for name in module.__all__:
            proto = getattr(module, name)
            if proto in checked or any(
                    proto in p.__mro__ for p in checked):
                continue
            # Argument types (Launch, DeleteQueue) are protocols of what
            # the adapter is handed, not of the adapter itself.
            assert name in ("Launch", "DeleteQueue"), name


@pytest.mark.parametrize("machine,port", [
    ("nodepool.driver.aws.create.AwsCreate", aws_ports.Launch),
    ("nodepool.driver.openstack.create.OpenStackCreate",
     openstack_ports.Launch),
    ("nodepool.driver.batcher.Batcher", aws_ports.DeleteQueue),
])
def test_arguments_satisfy_their_port(machine, port):
    """What the adapter is handed (a machine, the delete batcher) has
    what the protocol of that argument declares."""
    module, name = machine.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    available = set(dir(cls)) | instance_attributes(cls)
    assert protocol_members(port) <= available
