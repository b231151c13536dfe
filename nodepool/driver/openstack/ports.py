"""What each OpenStack machine and call sender needs from its adapter.

The adapter builds the create and delete machines, the senders of their
calls (``ServerCreator``, ``ServerDeleter``) and the ``LeakFinder``, and
hands itself to each.  Typed as ``OpenStackAdapter``, ``create.py``,
``delete.py`` and ``leaks.py`` had to import ``adapter.py`` -- which
imports all three: a cycle, only hidden under ``TYPE_CHECKING``, and an
object written against the whole adapter could reach any of its members
without anyone noticing.

Each protocol here names the few members one kind of object really uses,
so its dependencies on the adapter are read in one place, unit tests hand
it a small fake with exactly these members, and the imports run one way:
``adapter`` -> machines, senders, leak finder -> ``ports``.  The adapter
satisfies every protocol structurally (no inheritance);
``tests/unit/driver/test_ports.py`` checks both sides.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Mapping, MutableMapping, Protocol

from nodepool.config.model import Provider
from nodepool.driver.backoff import AccessGate
from nodepool.driver.instance import Instance
from nodepool.driver.openstack.api import OpenStackApi
from nodepool.driver.openstack.inventory import Inventory
from nodepool.driver.openstack.poller import ServerPoller
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["CreatorPort", "DeleterPort", "LeakPort", "Launch",
           "CreatePort", "DeletePort"]


class CreatorPort(Protocol):
    """``ServerCreator``: POST /servers, then the floating IP.

    ``attached_ips`` (server id -> floating address) is shared with the
    deleter: an IP attached a moment ago may not be listed yet."""

    api: OpenStackApi
    inventory: Inventory
    attached_ips: MutableMapping[str, str]

    def image_id(self, spec: LaunchSpec) -> str: ...


class DeleterPort(Protocol):
    """``ServerDeleter``: release the floating IPs, DELETE the server."""

    api: OpenStackApi
    poller: ServerPoller
    attached_ips: MutableMapping[str, str]

    def may_have_floating_ips(self) -> bool: ...


class LeakPort(Protocol):
    """``LeakFinder``: DOWN ports of no server, unbound floating IPs."""

    api: OpenStackApi
    provider: Provider

    def server_ids(self, max_age: float = ...) -> set[str]: ...


class Launch(Protocol):
    """What the adapter reads of a create machine it is handed."""

    spec: LaunchSpec


class CreatePort(Protocol):
    """``OpenStackCreate``: submit, wait for ACTIVE, add a floating IP."""

    access: AccessGate
    poller: ServerPoller

    def submit_create(self, machine: Launch) -> Future: ...

    def wants_floating_ip(self, spec: LaunchSpec,
                          record: Mapping) -> bool: ...

    def submit_finish(self, machine: Launch, record: Mapping) -> Future: ...

    def instance_from(self, record: Mapping, **kw: Any) -> Instance: ...

    def quota_refused(self) -> None: ...

    def delete_now(self, server_id: str) -> Future: ...


class DeletePort(Protocol):
    """``OpenStackDelete``: DELETE, then wait until the list drops it."""

    poller: ServerPoller

    def delete_now(self, server_id: str) -> Future: ...
