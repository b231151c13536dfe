"""What each AWS machine and call sender needs from its adapter.

The adapter builds the create and delete machines and the senders of the
calls (RunInstances, CreateFleet, dedicated hosts, TerminateInstances) and
hands itself to each.  Typed as ``AwsAdapter``, every one of those modules
had to import ``adapter.py`` -- which imports all of them: a cycle, only
hidden under ``TYPE_CHECKING``, and a machine written against the whole
adapter could reach any of its members without anyone noticing.

Each protocol here names the few members one kind of object really uses,
so a machine's dependencies on its adapter are read in one place, unit
tests hand it a small fake with exactly these members, and the imports run
one way: ``adapter`` -> machines and senders -> ``ports``.  The adapter
satisfies every protocol structurally (no inheritance);
``tests/unit/driver/test_ports.py`` checks both sides: each object uses
nothing of its adapter beyond its protocol, and the adapter has all of it.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Mapping, Protocol

from nodepool.config.model import PoolLabel, Provider
from nodepool.driver.aws.api import AwsApi
from nodepool.driver.aws.images import ImageResolver
from nodepool.driver.aws.tagger import Tagger
from nodepool.driver.aws.watcher import InstanceWatcher
from nodepool.driver.backoff import AccessGate
from nodepool.driver.instance import Instance
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["CallPort", "CreatorPort", "FleetPort", "TerminatorPort",
           "Launch", "CreatePort", "DeleteQueue", "DeletePort"]


class CallPort(Protocol):
    """The senders of create calls (``DedicatedHostCreator``)."""

    api: AwsApi
    images: ImageResolver


class CreatorPort(CallPort, Protocol):
    """``InstanceCreator``: RunInstances, then the late per-node tags."""

    tagger: Tagger


class FleetPort(CallPort, Protocol):
    """``FleetCreator``: CreateFleet and its launch templates."""

    provider: Provider
    installation: str | None

    def delete_now(self, external_id: Any) -> Future: ...


class TerminatorPort(Protocol):
    """``Terminator``: TerminateInstances, DescribeInstances for the ids
    a failed call may not have known."""

    api: AwsApi

    def describe(self, filters: list[dict]) -> list[dict]: ...


class Launch(Protocol):
    """What the adapter reads of a create machine it is handed."""

    spec: LaunchSpec


class CreatePort(Protocol):
    """``AwsCreate``: submit the call, wait for the instance to run."""

    access: AccessGate
    watcher: InstanceWatcher

    def submit_create(self, machine: Launch) -> Future: ...

    def created(self, instance_id: str) -> None: ...

    def node_instance(self, record: Mapping, label: PoolLabel,
                      external_id: Any) -> Instance: ...

    def delete_now(self, external_id: Any) -> Future: ...


class DeleteQueue(Protocol):
    """The delete batcher as a delete machine sees it: one id in, that
    id's own future out."""

    def add(self, item: str) -> Future: ...


class DeletePort(Protocol):
    """``AwsDelete``: terminate (queued or at once), wait until gone,
    release a dedicated host."""

    watcher: InstanceWatcher
    delete_batcher: DeleteQueue

    def delete_now(self, external_id: Any) -> Future: ...

    def created_recently(self, instance_id: str) -> bool: ...

    def release_host(self, host_id: str) -> Future: ...
