"""AzureCreate: one launch attempt as public IP(s) → NIC → VM.

Steps (each returns at once; calls run on the adapter's pools):

- START names the VM (that name is the node's ``external_id`` from the
  first step on, so a crash or failure can always delete what exists) and
  hands ``prepare`` to the read pool: resource group check and image
  reference; the VM body is built here too, so a label that cannot log in
  fails before anything is created.
- PUBLIC_IPS, NIC, VM each PUT their resource through the create pool
  (``polling=False``: the PUT returns as soon as ARM accepted it) and then
  wait for ``provisioningState: Succeeded`` -- from the PUT's answer, or
  from the shared ``Listing`` of that type, whose listing must have
  started after the answer arrived.  No step ever waits on a poller.
- ADDRESSES makes sure the private and public addresses are known
  (again from answers or fresh listings), then builds the ``Instance``.
- FAILED: the VM's create operation ended ``Failed``; its reason is read
  (instance view): a capacity code (``AllocationFailed`` ...) raises
  ``CapacityError``, anything else fails the attempt with ``LaunchError``.

Failure story: throttling and transient errors of a PUT are repeated by
the API client alone (``LimitedApi``; a PUT by name is idempotent); one it
gave up on fails the attempt (``Call`` in ``nodepool/driver/calls.py``
does not send it again), and an access error waits for the provider's
gate, bounded by the launcher's launch-timeout.  Quota and
capacity errors propagate (node aborted, request retried), configuration
errors fail the node, a failed provisioning fails the attempt.  When the
launcher starts a new attempt for the same node, ``abandon()`` cancels
what this one has not sent and deletes what it still creates.

Threads: a machine is stepped by its provider's loop thread only, so its own
fields need no lock; the steps only submit calls (``submit_put`` to the
create pool, ``submit_read`` to the read pool) and look at their futures and
at the shared listings.  ``abandon()`` is called on the loop thread too
(``PendingCreates``, when the next attempt's machine is made); the deletes
it arranges for calls still running are started by a done callback on the
pool thread that finishes the call, or at once on the loop thread if it has
just finished (``AzureAdapter.delete_later`` only queues the DELETE).
"""

from __future__ import annotations

import enum
import logging
from concurrent.futures import Future
from dataclasses import dataclass

from nodepool.driver import errors
from nodepool.driver.azure import params
from nodepool.driver.azure.errors import CAPACITY_CODES
from nodepool.driver.azure.ports import CreatePort
from nodepool.driver.calls import Call
from nodepool.driver.statemachine import LaunchSpec, StateMachine

__all__ = ["AzureCreate", "Put", "provisioning_state", "private_address",
           "private_ipv4", "public_address"]

log = logging.getLogger(__name__)

#: seconds to add to a listing's start so the next check needs a newer one
NEWER = 1e-6


def provisioning_state(record: dict | None) -> str | None:
    return ((record or {}).get("properties") or {}).get("provisioningState")


class ProvisioningFailed(errors.LaunchError):
    """A resource's create operation ended in ``Failed``."""


@dataclass
class Put:
    """One resource PUT and what is known about its result."""

    kind: str                     # listing kind: pips, nics, vms
    name: str
    body: dict
    call: Call                    # sent again after an access error
    record: dict | None = None
    answered: float | None = None   # when the answer was seen; later
                                    # checks need a listing newer than it


class AzureCreate(StateMachine):
    class State(enum.Enum):
        START = "start"
        PREPARING = "preparing"
        PUBLIC_IPS = "public-ips"
        NIC = "nic"
        VM = "vm"
        ADDRESSES = "addresses"
        FAILED = "failed"
        READY = "ready"

    STEPS = {State.START: "start", State.PREPARING: "preparing",
             State.PUBLIC_IPS: "public_ips", State.NIC: "nic",
             State.VM: "vm", State.ADDRESSES: "addresses",
             State.FAILED: "failed"}
    TERMINAL = frozenset({State.READY})

    def __init__(self, adapter: CreatePort, spec: LaunchSpec,
                 clock=None) -> None:
        super().__init__(clock or adapter.clock)
        self.adapter = adapter
        self.spec = spec
        self.vm_name = params.vm_name(spec)
        self.tags = params.tags(spec)
        self.plan = params.network_plan(spec.pool.settings)
        self.prep = self._call("preparation")
        self.pips: dict[int, Put] = {}
        self.nic_put: Put | None = None
        self.vm_put: Put | None = None
        self.vm_body: dict | None = None
        self.reason: Future | None = None
        self.addresses_since = 0.0

    # -- steps --------------------------------------------------------------
    def start(self):
        self.external_id = self.vm_name
        if not self.prep.due:
            return self.State.START
        self.prep.send(self.adapter.submit_read(self.adapter.prepare,
                                                self.spec))
        return self.State.PREPARING

    def preparing(self):
        if not self.prep.poll():
            return self.State.PREPARING if self.prep.running \
                else self.State.START
        image_ref = self.prep.value
        adapter = self.adapter
        nic_id = adapter.resource_id("nics", params.nic_name(self.vm_name))
        # Built now so a label that cannot log in fails before anything
        # has been created.
        self.vm_body = params.vm_body(self.spec, adapter.location,
                                      self.vm_name, image_ref, nic_id,
                                      self.tags)
        for version in (4, 6):
            if self.plan[f"public-ipv{version}"]:
                self.pips[version] = self._put(
                    "pips", params.pip_name(self.vm_name, version),
                    params.pip_body(adapter.location, self.tags, version))
        for put in self.pips.values():
            self._send(put)
        return self.public_ips()    # without public IPs: NIC at once

    def public_ips(self):
        settled = [self._settled(put) for put in self.pips.values()]
        if not all(settled):
            return self.State.PUBLIC_IPS
        pip_ids = {v: put.record["id"] for v, put in self.pips.items()}
        body = params.nic_body(self.adapter.location, self.tags,
                               self.adapter.subnet_id, pip_ids,
                               self.plan["ipv6"])
        self.nic_put = self._put("nics", params.nic_name(self.vm_name), body)
        self._send(self.nic_put)
        return self.State.NIC

    def nic(self):
        if not self._settled(self.nic_put):
            return self.State.NIC
        self.vm_put = self._put("vms", self.vm_name, self.vm_body)
        self._send(self.vm_put)
        return self.State.VM

    def vm(self):
        try:
            if not self._settled(self.vm_put):
                return self.State.VM
        except ProvisioningFailed:
            self.reason = self.adapter.submit_read(
                self.adapter.failure_reason, self.vm_name)
            return self.State.FAILED
        self.addresses_since = self.clock()
        return self.addresses()

    def addresses(self):
        known = [self._knows(self.nic_put, private_ipv4)]
        if self.plan["ipv6"]:
            known.append(self._knows(
                self.nic_put, lambda nic: private_address(nic, 6)))
        known += [self._knows(put, public_address)
                  for put in self.pips.values()]
        if not all(known):
            return self.State.ADDRESSES
        self.instance = self.adapter.instance_for(
            self.vm_put.record, self.nic_put.record,
            {v: p.record for v, p in self.pips.items()})
        return self.State.READY

    def failed(self):
        if not self.reason.done():
            return self.State.FAILED
        try:
            reason = self.reason.result()
        except Exception as e:
            reason = f"(reason unknown: {e})"
        what = (f"VM {self.vm_name} of node {self.spec.node_id} failed to "
                f"provision: {reason}")
        if reason.split(":", 1)[0].strip() in CAPACITY_CODES:
            # Azure had no room for the size (AllocationFailed, ...): the
            # offering is out, not this attempt's fault.
            raise errors.CapacityError(what)
        raise errors.LaunchError(what, stat_key="error.status")

    # -- helpers ------------------------------------------------------------
    def _call(self, what: str) -> Call:
        return Call(what, self.adapter.access, self.clock,
                    node=self.spec.node_id, log=log)

    def _put(self, kind: str, name: str, body: dict) -> Put:
        return Put(kind, name, body, self._call(f"PUT of {name}"))

    def _send(self, put: Put) -> None:
        put.call.send(self.adapter.submit_put(put.kind, put.name, put.body))

    def _settled(self, put: Put) -> bool:
        """True once ``put``'s resource is provisioned (see module doc)."""
        if put.answered is None:
            if put.call.due:
                self._send(put)
                return False
            if not put.call.poll():
                return False
            put.record = put.call.value
            put.answered = self.clock()
        return self._provisioned(put)

    def _provisioned(self, put: Put) -> bool:
        state = provisioning_state(put.record)
        if state not in ("Succeeded", "Failed"):
            if not self._refresh(put):
                return False
            state = provisioning_state(put.record)
        if state == "Failed":
            raise ProvisioningFailed(f"{put.name} failed to provision",
                                     stat_key="error.status")
        return state == "Succeeded"

    def _knows(self, put: Put, address) -> bool:
        """True once ``address(put.record)`` is known, reading a newer
        listing when the record at hand lacks it."""
        if address(put.record):
            return True
        return self._refresh(put) and bool(address(put.record))

    def _refresh(self, put: Put) -> bool:
        """Take ``put.record`` from a listing newer than the last one
        used; False while none is available yet."""
        since = put.answered if put.answered is not None else 0.0
        since = max(since, self.addresses_since)
        snap = self.adapter.listings[put.kind].snapshot(since)
        if snap is None:
            return False
        record = snap.get(put.name)
        if record is None:
            raise errors.LaunchError(
                f"{put.name} disappeared while node {self.spec.node_id} "
                "was being created", stat_key="error.status")
        put.record = record
        put.answered = snap.started + NEWER
        return True

    def abandon(self) -> None:
        """A newer attempt replaced this one: cancel what is not sent,
        delete what is still being created."""
        for put in [*self.pips.values(), self.nic_put, self.vm_put]:
            # Answered calls are the launcher's business: it deletes the
            # attempt by its external_id.  Only a call still running can
            # create something after that delete has looked.
            if put is not None:
                put.call.abandon(lambda _, put=put: self._delete_orphan(put),
                                 answered=False)

    def _delete_orphan(self, put: Put) -> None:
        log.info("Node %s: deleting %s of an abandoned attempt",
                 self.spec.node_id, put.name)
        self.adapter.delete_later(put.kind, put.name)


def private_address(nic: dict | None, version: int = 4) -> str | None:
    """The NIC's private address of IP ``version``: as upstream reads it,
    the last ipConfiguration of that ``privateIPAddressVersion`` (IPv4 when
    a configuration does not say)."""
    found = None
    for ipc in ((nic or {}).get("properties") or {}).get(
            "ipConfigurations") or []:
        props = ipc.get("properties") or {}
        if props.get("privateIPAddressVersion", "IPv4") == f"IPv{version}" \
                and props.get("privateIPAddress"):
            found = props["privateIPAddress"]
    return found


def private_ipv4(nic: dict | None) -> str | None:
    return private_address(nic, 4)


def public_address(pip: dict | None) -> str | None:
    return ((pip or {}).get("properties") or {}).get("ipAddress")
