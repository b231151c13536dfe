"""Creating servers: the calls (``ServerCreator``) and the machine.

``ServerCreator.create(spec)`` resolves flavor, image, networks and zone
(cached lookups, see ``inventory``) and sends one ``POST /servers``; it
runs on a create-pool worker, never on the provider loop.  Every server is
created with its ``nodepool_*`` metadata, so from its first moment leak
cleanup can tell whose it is.  ``ServerCreator.finish(server_id, record)``
runs after the server is ACTIVE: when the pool has ``auto-floating-ip`` and
the server has no public address, it finds the server's port and creates a
floating IP on the external network bound to that port in one call (so the
IP is never unattached, and never mistaken for a leak).

``OpenStackCreate`` is the state machine:

    SUBMIT --> CREATING --> BUILDING --> FINISHING --> READY
      ^           |  access error (when the gate opens)
      +-----------+

SUBMIT and CREATING are the framework's (``CreateMachine`` in
``nodepool/driver/machines.py``: the create goes to the pool; a throttle
the API outlasted no longer, or a 5xx (the POST is not idempotent: the API
repeats it not at all), fails the attempt; an access error waits for the
provider's gate, bounded by the launcher's launch-timeout; and a replaced
attempt deletes what it still creates); CREATING records ``external_id``.  This module adds BUILDING,
which reads the poller's latest record until the server is ACTIVE (ERROR:
``fault_error`` decides between QuotaError and LaunchError), and
FINISHING, which waits for the floating IP when the pool wants one and
the server has no public address (decided from cached data, so nodes
that need no IP never wait behind queued creates).  A quota refusal also
makes the adapter forget its cached limits, so the pool sees the cloud's
real room.

Why one server per call (no Nova multi-create, issue 5 item 3): the
servers of one ``min_count``/``max_count`` call share their name stem and
metadata, so each must then be renamed to its node's hostname and given
its ``nodepool_node_id`` -- two more calls per server (plus one to list
the reservation).  Under OpenStack's ``rate`` (seconds between *any* two
calls) N nodes would cost 2N+2 calls instead of N, halving the launch
rate; and until the metadata lands, a server names no node, so any
launcher sharing the provider (upstream's included) would count it as a
leak.  The create pool, sized from the rate, already hides the latency of
single creates, which is all multi-create would save.
"""

from __future__ import annotations

import enum
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from nodepool.driver import errors
from nodepool.driver.backoff import log_failure
from nodepool.driver.calls import answer_of
from nodepool.driver.instance import InstanceState
from nodepool.driver.machines import CreateMachine
from nodepool.driver.openstack import params
from nodepool.driver.openstack.errors import fault_error
from nodepool.driver.openstack.quota import label_cost
from nodepool.driver.openstack.addresses import needs_floating_ip
from nodepool.driver.openstack.ports import CreatePort, CreatorPort
from nodepool.driver.openstack.servers import server_state
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["ServerCreator", "OpenStackCreate", "Created"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    """What a create call returns: the server and what the node costs."""

    server_id: str
    resources: Mapping[str, float]


class ServerCreator:
    """The create-path calls of one adapter (run on pool workers)."""

    def __init__(self, adapter: CreatorPort):
        self.adapter = adapter

    def prepare(self, spec: LaunchSpec) -> tuple[dict[str, Any], dict]:
        """The ``server`` body for ``spec`` and the node's quota cost."""
        adapter, inventory = self.adapter, self.adapter.inventory
        settings = spec.label.settings
        flavor = inventory.flavor(settings)
        image_id = adapter.image_id(spec)
        network_ids = inventory.network_ids(settings.get("networks") or [])
        zones: list[str] = []
        if not spec.az and not spec.pool.settings.get("availability-zones"):
            zones = inventory.zones.get()
        image = spec.label.image
        microversion = adapter.api.compute_microversion() or "2.1"
        body = params.server_body(
            spec, flavor_id=flavor.id, image_id=image_id,
            network_ids=network_ids, az=params.choose_az(spec, zones),
            networks_required=_at_least(microversion, (2, 37)),
            config_drive=(image.settings.get("config-drive")
                          if image is not None else None))
        return body, label_cost(settings, flavor).values

    def create(self, spec: LaunchSpec) -> Created:
        body, cost = self.prepare(spec)
        answer = self.adapter.api.compute(
            "POST", "/servers", write=True, operation="create server",
            json={"server": body})
        server_id = (answer or {}).get("server", {}).get("id")
        if not server_id:
            raise errors.LaunchError(f"create answered no server id: "
                                     f"{answer!r}", stat_key="error.unknown")
        log.debug("Node %s: created server %s", spec.node_id, server_id)
        return Created(server_id, cost)

    def finish(self, spec: LaunchSpec, record: Mapping) -> str | None:
        """Attach a floating IP if the server needs one; its address."""
        if not spec.pool.settings.get("auto-floating-ip", True):
            return None
        inventory = self.adapter.inventory
        external = inventory.external_network()
        if external is None or not needs_floating_ip(
                record, inventory.address_rules()):
            return None
        api = self.adapter.api
        server_id = record["id"]
        ports = api.read("list server ports", lambda: list(
            api.conn.network.ports(device_id=server_id)))
        port, fixed = _nat_port(ports, external.id,
                                inventory.nat_network_id())
        if port is None:
            raise errors.LaunchError(
                f"server {server_id} has no port for a floating IP",
                stat_key="error.floatingip")
        fip = api.write("create floating ip", lambda: api.conn.network.
                        create_ip(floating_network_id=external.id,
                                  port_id=port.id, fixed_ip_address=fixed))
        self.adapter.attached_ips[server_id] = fip.floating_ip_address
        log.info("Node %s: floating IP %s attached to server %s",
                 spec.node_id, fip.floating_ip_address, server_id)
        return fip.floating_ip_address


def _at_least(version: str, wanted: tuple[int, int]) -> bool:
    try:
        major, minor = (int(p) for p in version.split("."))
    except ValueError:
        return False
    return (major, minor) >= wanted


def _nat_port(ports, external_id: str, nat_network_id: str | None = None):
    """The port (and its IPv4) a floating IP goes to: on the clouds.yaml
    ``nat_destination`` network if one is set, else the first one on a
    non-external network."""
    for port in ports:
        if port.network_id == external_id or (
                nat_network_id and port.network_id != nat_network_id):
            continue
        for fixed in port.fixed_ips or []:
            address = fixed.get("ip_address", "")
            if address and ":" not in address:
                return port, address
    return None, None


class OpenStackCreate(CreateMachine):
    """POST /servers through the create pool (``CreateMachine``), then
    BUILDING until the server is ACTIVE and FINISHING its floating IP."""

    class State(enum.Enum):
        BUILDING = "building"
        FINISHING = "finishing"

    STEPS = {State.BUILDING: "building", State.FINISHING: "finishing"}
    log = log

    #: how long a fresh server list may miss our server before it counts
    #: as vanished (a list taken right after the create may miss it)
    MISSING_GRACE = 10.0

    def __init__(self, adapter: CreatePort, spec: LaunchSpec,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(spec, adapter.access, clock)
        self.adapter = adapter
        self.finish: Future | None = None
        self.created: Created | None = None
        self.record: Mapping | None = None
        self.missing_since: float | None = None

    # -- the create call ------------------------------------------------------
    def send_create(self) -> Future:
        return self.adapter.submit_create(self)

    def identify(self, created: Created) -> str:
        return created.server_id

    def answered(self, created: Created):
        self.created = created
        self.adapter.poller.watch(self.external_id)
        return self.State.BUILDING

    def creating(self):
        try:
            return super().creating()
        except errors.QuotaError as e:
            raise self._noted(e)

    def delete_orphan(self, server_id: str) -> None:
        self.adapter.delete_now(server_id)

    # -- steps ---------------------------------------------------------------
    def building(self):
        look = self.adapter.poller.lookup(self.external_id)
        record = look.record
        if record is None:
            return self._missing(look.fresh)
        self.missing_since = None
        state = server_state(record)
        if state is InstanceState.RUNNING and not record.get("addresses"):
            # Nova may report ACTIVE before its network cache is filled;
            # a node without any address would be useless.
            return self.State.BUILDING
        if state is InstanceState.RUNNING:
            self.adapter.poller.unwatch(self.external_id)
            self.record = record
            if not self.adapter.wants_floating_ip(self.spec, record):
                return self._ready(None)
            self.finish = self.adapter.submit_finish(self, record)
            return self.State.FINISHING
        if state is InstanceState.ERROR:
            self.adapter.poller.unwatch(self.external_id)
            raise self._noted(fault_error(record))
        if state in (InstanceState.DELETED, InstanceState.STOPPING):
            self.adapter.poller.unwatch(self.external_id)
            raise errors.LaunchError(
                f"server {self.external_id} is {record.get('status')} "
                f"({record.get('OS-EXT-STS:task_state')}) while building",
                stat_key="error.status")
        return self.State.BUILDING

    def finishing(self):
        if not self.finish.done():
            return self.State.FINISHING
        future, self.finish = self.finish, None
        try:
            address = answer_of(future, "floating IP")
        except errors.WAIT_FOR_ACCESS as e:
            # The access gate is this error's one layer: ask again once
            # the server is looked at again.  A throttle or a transient
            # error is final here (LimitedApi repeated it): it fails the
            # attempt like any other DriverError.
            log_failure(log, e, "Node %s: floating IP will be tried again: "
                        "%s", self.spec.node_id, e, level=logging.INFO)
            self.adapter.poller.watch(self.external_id)
            return self.State.BUILDING
        except errors.QuotaError as e:
            raise self._noted(e)
        return self._ready(address)

    def _ready(self, address: str | None):
        self.instance = self.adapter.instance_from(
            self.record, resources=self.created.resources,
            public_ipv4=address)
        return self.Phase.READY

    # -- helpers -------------------------------------------------------------
    def _noted(self, error: errors.DriverError) -> errors.DriverError:
        if isinstance(error, errors.QuotaError):
            self.adapter.quota_refused()
        return error

    def _missing(self, fresh: bool):
        if not fresh:
            return self.State.BUILDING
        now = self.clock()
        if self.missing_since is None:
            self.missing_since = now
        elif now - self.missing_since > self.MISSING_GRACE:
            self.adapter.poller.unwatch(self.external_id)
            raise errors.LaunchError(
                f"server {self.external_id} vanished while building",
                stat_key="error.status")
        return self.State.BUILDING
