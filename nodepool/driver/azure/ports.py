"""What the Azure create and delete machines need from their adapter.

The adapter builds the machines and hands itself to each.  Typed as
``AzureAdapter``, ``create.py`` and ``delete.py`` had to import
``adapter.py`` -- which imports both: a cycle, only hidden under
``TYPE_CHECKING``, and a machine written against the whole adapter could
reach any of its members without anyone noticing.

Each protocol here names the few members one machine really uses (the
write and read queues, the shared listings, a handful of builders), so a
machine's dependencies on its adapter are read in one place, unit tests
hand it a small fake with exactly these members, and the imports run one
way: ``adapter`` -> machines -> ``ports``.  The adapter satisfies both
protocols structurally (no inheritance); ``tests/unit/driver/test_ports.py``
checks both sides.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Mapping, Protocol

from nodepool.driver.azure.listing import Listing
from nodepool.driver.backoff import AccessGate
from nodepool.driver.instance import Instance
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["MachinePort", "CreatePort", "DeletePort"]


class MachinePort(Protocol):
    """What both machines use: the clock their timings are read from,
    the provider's access gate (back-off) and the listings, by kind
    (``vms``, ``nics``, ``pips``, ``disks``), that tell when a resource
    is provisioned or gone."""

    access: AccessGate
    listings: Mapping[str, Listing]

    def clock(self) -> float: ...


class CreatePort(MachinePort, Protocol):
    """``AzureCreate``: PUT public IPs, NIC and VM; build the Instance."""

    location: str
    subnet_id: str

    def submit_read(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def prepare(self, spec: LaunchSpec) -> dict: ...

    def resource_id(self, kind: str, name: str) -> str: ...

    def submit_put(self, kind: str, name: str, body: Mapping) -> Future: ...

    def failure_reason(self, vm: str) -> str: ...

    def instance_for(self, vm: Mapping, nic: Mapping | None,
                     pips: Mapping[int, Mapping]) -> Instance: ...

    def delete_later(self, kind: str, name: str) -> None: ...


class DeletePort(MachinePort, Protocol):
    """``AzureDelete``: DELETE the VM and whatever did not go with it."""

    def submit_delete(self, kind: str, name: str) -> Future: ...
