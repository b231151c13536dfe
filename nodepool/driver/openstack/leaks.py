"""Leaked Neutron ports and floating IPs (behaviour 35).

Neither carries our metadata, so both cleanups assume what upstream
assumes when an operator turns them on: the project belongs to this
provider.  They report candidates to the launcher's cleanup worker as
``Resource`` values tagged with our provider name whose ``orphan`` says
why (they carry no node id for the tag rule to read); the worker deletes
a candidate only on the second consecutive pass that reports it
(behaviour 33), and ``delete`` checks it once more right before
deleting.

Ports (``port-cleanup-interval`` > 0; 0 disables): a port Nova made for a
server (``device_owner`` ``compute:*``) that is ``DOWN`` and whose device is
not a listed server.  Ports of servers still building are DOWN too, but
their server is listed, so they are never candidates.  Neutron is asked at
most once per interval (default 600 s); in between, the candidates of the
last scan are reported again, so the worker's second pass can confirm them,
and the final check catches a port that was reused meanwhile.

Floating IPs (``clean-floating-ips: true``): an IP bound to no port.  The
driver creates its floating IPs already bound (``create.py``), so only
leaked ones are ever unbound: their server was deleted behind our back.

Failure story: listing errors propagate to the cleanup worker, which logs
them and tries again on its next pass; a resource that is gone when we
delete it counts as deleted.

Threads: called by the launcher's cleanup worker (``CleanupWorker``, through
the adapter's ``list_resources`` and ``delete_resource``), on its thread,
which waits for Neutron (and for a fresh server listing).  ``_lock`` guards
the time of the last port scan and the candidates it found; the listing
calls run outside it.  Times come from the injected ``clock``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from nodepool.driver import errors
from nodepool.driver.instance import Resource
from nodepool.driver.openstack.ports import LeakPort

__all__ = ["LeakFinder", "PORTS", "FLOATING_IPS"]

log = logging.getLogger(__name__)

PORTS = "ports"
FLOATING_IPS = "floatingips"


class LeakFinder:
    """Lists and deletes leaked ports and floating IPs of one adapter."""

    def __init__(self, adapter: LeakPort, port_interval: float,
                 clean_floating_ips: bool,
                 clock: Callable[[], float] = time.monotonic):
        self.adapter = adapter
        self.port_interval = port_interval
        self.clean_floating_ips = clean_floating_ips
        self._clock = clock
        self._lock = threading.Lock()
        self._last_port_scan: float | None = None
        self._port_candidates: dict[str, Resource] = {}

    def _tag(self) -> dict[str, str]:
        return {"nodepool_provider_name": self.adapter.provider.name}

    # -- listing --------------------------------------------------------------
    def resources(self) -> list[Resource]:
        found: list[Resource] = []
        if self.port_interval > 0:
            found += self._ports()
        if self.clean_floating_ips:
            found += self._floating_ips()
        return found

    def _ports(self) -> list[Resource]:
        with self._lock:
            now = self._clock()
            due = (self._last_port_scan is None
                   or now - self._last_port_scan >= self.port_interval)
            if not due:
                return list(self._port_candidates.values())
            self._last_port_scan = now
        candidates = {p.id: Resource(type=PORTS, id=p.id,
                                     metadata=self._tag(),
                                     driver_data={"device_id": p.device_id},
                                     orphan="DOWN port of no server")
                      for p in self._down_orphan_ports()}
        with self._lock:
            self._port_candidates = candidates
        return list(candidates.values())

    def _down_orphan_ports(self) -> list:
        api = self.adapter.api
        ports = api.read("list down ports", lambda: list(
            api.conn.network.ports(status="DOWN")))
        ports = [p for p in ports
                 if (p.device_owner or "").startswith("compute:")]
        if not ports:
            return []
        # Fresh on purpose: a port whose server was just created must be
        # seen with its server.
        live = self.adapter.server_ids(max_age=0.0)
        return [p for p in ports if p.device_id not in live]

    def _floating_ips(self) -> list[Resource]:
        api = self.adapter.api
        fips = api.read("list floating ips", lambda: list(
            api.conn.network.ips()))
        return [Resource(type=FLOATING_IPS, id=f.id, metadata=self._tag(),
                         driver_data={"address": f.floating_ip_address},
                         orphan="floating IP bound to no port")
                for f in fips if not f.port_id]

    # -- deleting -------------------------------------------------------------
    def delete(self, resource: Resource) -> None:
        if resource.type == PORTS:
            self._delete_port(resource)
        elif resource.type == FLOATING_IPS:
            self._delete_floating_ip(resource)
        else:
            raise errors.ConfigurationError(
                f"OpenStack does not clean up {resource.type}")

    def _delete_port(self, resource: Resource) -> None:
        api = self.adapter.api
        with self._lock:
            self._port_candidates.pop(resource.id, None)
        try:
            port = api.read("get port", lambda: api.conn.network.get_port(
                            resource.id))
        except errors.NotFoundError:
            return
        if port.status != "DOWN" or (
                port.device_id and
                port.device_id in self.adapter.server_ids(max_age=0.0)):
            log.info("Port %s is in use again; not deleted", resource.id)
            return
        log.info("Deleting leaked port %s (device %s)", resource.id,
                 port.device_id)
        try:
            api.write("delete port", lambda: api.conn.network.delete_port(
                      resource.id, ignore_missing=False))
        except errors.NotFoundError:
            pass

    def _delete_floating_ip(self, resource: Resource) -> None:
        api = self.adapter.api
        try:
            fip = api.read("get floating ip", lambda: api.conn.network.get_ip(
                           resource.id))
        except errors.NotFoundError:
            return
        if fip.port_id:
            log.info("Floating IP %s is bound again; not deleted",
                     fip.floating_ip_address)
            return
        log.info("Deleting leaked floating IP %s", fip.floating_ip_address)
        try:
            api.write("delete floating ip", lambda: api.conn.network.delete_ip(
                      resource.id, ignore_missing=False))
        except errors.NotFoundError:
            pass
