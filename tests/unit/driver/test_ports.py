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

import importlib

import pytest

from nodepool.driver.aws import ports as aws_ports
from nodepool.driver.aws.adapter import AwsAdapter
from nodepool.driver.azure import ports as azure_ports
from nodepool.driver.azure.adapter import AzureAdapter
from nodepool.driver.openstack import ports as openstack_ports
from nodepool.driver.openstack.adapter import OpenStackAdapter
from tests.protocols import (different_parameters, instance_attributes,
                             missing_members, protocol_members, uses)

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


@pytest.mark.parametrize("module,cls,port,adapter", USERS, ids=IDS)
def test_uses_nothing_beyond_its_port(module, cls, port, adapter):
    undeclared = uses(module, cls, "adapter") - protocol_members(port)
    assert not undeclared, (
        f"{cls} reads {sorted(undeclared)} of its adapter, which "
        f"{port.__module__}.{port.__name__} does not declare")


@pytest.mark.parametrize("module,cls,port,adapter", USERS, ids=IDS)
def test_adapter_provides_the_port(module, cls, port, adapter):
    missing = missing_members(port, adapter)
    assert not missing, f"{adapter.__name__} lacks {sorted(missing)}"
    differ = different_parameters(port, adapter)
    assert not differ, (f"{adapter.__name__} and {port.__name__} take "
                        f"different parameters in {differ}")


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
