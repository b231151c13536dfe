"""Deleting servers: the calls (``ServerDeleter``) and the machine.

Nova has no batch delete, so each server costs one ``DELETE`` call, sent
from the adapter's delete pool at the write rate.  Floating IPs are
released first (upstream's ``delete_ips``): a floating IP outlives its
server in Neutron, and nobody else would delete it unless the operator
turned on ``clean-floating-ips``.  The adapter remembers the IPs it
attached, and the poller's last record shows others; when no record is
known (a launcher that just started), the server's ports are asked.

``OpenStackDelete`` is the framework's ``DeleteMachine``
(``nodepool/driver/machines.py``) reading the poller's records:

    SUBMIT --> DELETING --> WAITING --> DONE
      ^                        |  still there, not "deleting", after 60 s
      +------------------------+

WAITING watches the server list until the server is gone, so its quota is
free before the node's znode disappears.

Failure story: a server that is already gone (404) counts as deleted
(behaviour 27).  A failed call raises from the machine; the launcher keeps
the node in ``deleting`` and tries again later.  A server Nova accepted the
delete for but still lists without ``task_state: deleting`` (a failed
delete, typically ERROR) gets the delete re-sent every ``RESEND`` seconds;
``WAIT_LIMIT`` seconds after Nova first accepted the delete the machine
gives up with a TransientError.

Threads: ``OpenStackDelete`` is stepped by the provider's loop thread, which
never calls the cloud: ``send_delete`` submits ``ServerDeleter.delete`` to
the adapter's delete pool (``<provider>-delete_N``), and WAITING reads the
poller's last records.  ``ServerDeleter`` runs there, on the pool's threads,
waiting for Neutron and Nova; it keeps no state of its own, and pops the
server's entry of the adapter's ``attached_ips`` (one dict operation, no
lock).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Callable

from nodepool.driver import errors
from nodepool.driver.instance import InstanceState
from nodepool.driver.machines import DeleteMachine
from nodepool.driver.openstack.ports import DeletePort, DeleterPort
from nodepool.driver.openstack.servers import floating_addresses, \
    server_state

__all__ = ["ServerDeleter", "OpenStackDelete"]

log = logging.getLogger(__name__)


class ServerDeleter:
    """The delete-path calls of one adapter (run on pool workers)."""

    def __init__(self, adapter: DeleterPort):
        self.adapter = adapter

    def delete(self, server_id: str) -> None:
        """Release the server's floating IPs, then delete it.

        Raises NotFoundError when the server does not exist.
        """
        self.release_floating_ips(server_id)
        self.adapter.api.compute("DELETE", f"/servers/{server_id}",
                                 write=True, operation="delete server")

    def release_floating_ips(self, server_id: str) -> None:
        api = self.adapter.api
        known = self.adapter.attached_ips.pop(server_id, None)
        record = self.adapter.poller.latest(server_id)
        if known is not None or (record is not None
                                 and floating_addresses(record)):
            addresses = set(floating_addresses(record or {}))
            if known is not None:
                addresses.add(known)
            fips = [fip for address in sorted(addresses) for fip in api.read(
                "list floating ips", lambda a=address: list(
                    api.conn.network.ips(floating_ip_address=a)))]
        elif record is None and self.adapter.may_have_floating_ips():
            ports = api.read("list server ports", lambda: list(
                api.conn.network.ports(device_id=server_id)))
            if not ports:
                return
            fips = api.read("list floating ips", lambda: list(
                api.conn.network.ips(port_id=[p.id for p in ports])))
        else:
            return
        for fip in fips:
            log.info("Releasing floating IP %s of server %s",
                     fip.floating_ip_address, server_id)
            try:
                api.write("delete floating ip",
                          lambda fip=fip: api.conn.network.delete_ip(
                              fip.id, ignore_missing=False))
            except errors.NotFoundError:
                pass


class OpenStackDelete(DeleteMachine):
    """DELETE from the delete pool (``DeleteMachine``), then the server
    list until the server is gone; a server Nova does not delete is
    deleted again."""

    #: re-send the delete when the server is still listed and not deleting
    RESEND = 60.0
    #: give up (the launcher retries later) after this long
    WAIT_LIMIT = 600.0

    def __init__(self, adapter: DeletePort, external_id: str,
                 immediate: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(external_id, immediate, clock)
        self.adapter = adapter

    def send_delete(self) -> Future:
        # Never batched: Nova has no batch delete.
        return self.adapter.delete_now(self.external_id)

    def watch(self) -> None:
        self.adapter.poller.watch(self.external_id)

    def unwatch(self) -> None:
        self.adapter.poller.unwatch(self.external_id)

    def lookup(self):
        return self.adapter.poller.lookup(self.external_id)

    def is_deleted(self, record: dict) -> bool:
        return server_state(record) is InstanceState.DELETED

    def still_there(self, record: dict):
        waited = self.clock() - self.state_time
        if waited > self.RESEND and \
                record.get("OS-EXT-STS:task_state") != "deleting":
            log.info("Server %s still %s after delete; deleting again",
                     self.external_id, record.get("status"))
            return self.Phase.SUBMIT
        return self.Phase.WAITING

    def wait_limit(self, record: dict):
        self.unwatch()
        raise errors.TransientError(
            f"server {self.external_id} still {record.get('status')} "
            f"{self.WAIT_LIMIT:.0f}s after its delete")
