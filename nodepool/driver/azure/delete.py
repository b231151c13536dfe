"""AzureDelete: remove everything one launch attempt created.

``external_id`` is the VM name; the other resources are named after it
(``params.resource_names``).  Steps:

- the VM is deleted first (one DELETE; ARM answers 202, or 204 when there
  is no such VM) and the machine waits until a VM listing started after
  the answer no longer shows it.  The NIC, public IPs and OS disk were
  created with ``deleteOption: Delete``, so normally they go with it;
- LEFTOVERS then reads the NIC, public IP and disk listings (started after
  the VM was gone) for resources that did not cascade -- a launch that
  failed before its VM existed, or a VM created by hand -- and deletes
  them in dependency order: NIC and disk first, public IPs once the NIC is
  gone (ARM refuses to delete an address still attached to a NIC).

In the usual case a node therefore costs one DELETE; the leftover checks
are reads of listings shared by every machine.

Failure story: "not found" is success.  Throttling and transient errors
are repeated by the API client alone (``LimitedApi``); one it gave up on
is raised at once, and an access error is waited out at the provider's
gate ``MAX_ATTEMPTS`` times, then raised (``Call`` in
``nodepool/driver/calls.py``): the launcher's deleter keeps the node in
``deleting`` and tries again with a new machine later (behaviour 27).
A resource still listed ``WAIT_LIMIT`` seconds after its DELETE was
accepted raises ``TransientError`` the same way, which sends the DELETE
again.

``immediate`` (retry and leak paths) changes nothing: Azure deletes are
single calls, never batched.

Threads: a machine is stepped by its provider's loop thread only (its fields
need no lock); the DELETEs go to the adapter's create pool
(``submit_delete``: the shared write queue, urgent first), and the waits
read the shared listings, refreshed on the read pool.  Nothing here calls
Azure on the loop thread.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from nodepool.driver import errors
from nodepool.driver.azure import params
from nodepool.driver.azure.ports import DeletePort
from nodepool.driver.calls import Call
from nodepool.driver.statemachine import StateMachine

__all__ = ["AzureDelete", "Removal"]

log = logging.getLogger(__name__)


@dataclass
class Removal:
    kind: str                  # listing kind: vms, nics, pips, disks
    name: str
    call: Call                 # sent again after an access error
    answered: float | None = None
    gone: bool = False


class AzureDelete(StateMachine):
    class State(enum.Enum):
        START = "start"
        DELETING = "deleting"
        LEFTOVERS = "leftovers"
        DONE = "done"

    STEPS = {State.START: "start", State.DELETING: "deleting",
             State.LEFTOVERS: "leftovers"}
    TERMINAL = frozenset({State.DONE})

    MAX_ATTEMPTS = 6
    #: seconds a resource may still be listed after its DELETE was accepted
    WAIT_LIMIT = 600.0

    def __init__(self, adapter: DeletePort, external_id: str,
                 immediate: bool = False, clock=None) -> None:
        super().__init__(clock or adapter.clock)
        self.adapter = adapter
        self.external_id = external_id
        self.immediate = immediate
        self.names = params.resource_names(str(external_id))
        self.batches: list[list[Removal]] = []
        self.vm_gone_at: float | None = None

    def start(self):
        self.batches = [[self._removal("vms", str(self.external_id))]]
        return self.State.DELETING

    def deleting(self):
        batch = self.batches[0]
        done = [self._advance(r) for r in batch]
        if not all(done):
            return self.State.DELETING
        self.batches.pop(0)
        if self.vm_gone_at is None:
            self.vm_gone_at = self.clock()
            return self.State.LEFTOVERS
        return self.State.DELETING if self.batches else self.State.DONE

    def leftovers(self):
        snaps = {kind: self.adapter.listings[kind].snapshot(self.vm_gone_at)
                 for kind in ("nics", "pips", "disks")}
        if any(snap is None for snap in snaps.values()):
            return self.State.LEFTOVERS
        present = {kind: [n for n in self.names[kind] if snaps[kind].get(n)]
                   for kind in snaps}
        first = [self._removal("nics", n) for n in present["nics"]] + \
            [self._removal("disks", n) for n in present["disks"]]
        second = [self._removal("pips", n) for n in present["pips"]]
        self.batches = [b for b in (first, second) if b]
        if self.batches:
            log.info("Deleting leftovers of %s: %s", self.external_id,
                     [r.name for b in self.batches for r in b])
            return self.State.DELETING
        return self.State.DONE

    # -- one resource -------------------------------------------------------
    def _removal(self, kind: str, name: str) -> Removal:
        return Removal(kind, name, Call(
            f"DELETE of {name}", self.adapter.access, self.clock,
            cancelled=errors.TransientError, max_attempts=self.MAX_ATTEMPTS,
            log=log))

    def _advance(self, removal: Removal) -> bool:
        if removal.gone:
            return True
        if removal.answered is None:
            call = removal.call
            if call.due:
                call.send(self.adapter.submit_delete(removal.kind,
                                                     removal.name))
                return False
            try:
                if not call.poll():
                    return False
            except errors.NotFoundError:
                removal.gone = True
                return True
            removal.answered = self.clock()
        snap = self.adapter.listings[removal.kind].snapshot(removal.answered)
        if snap is None:
            return False
        if snap.get(removal.name) is None:
            removal.gone = True
            return True
        if self.clock() - removal.answered > self.WAIT_LIMIT:
            raise errors.TransientError(
                f"{removal.name} still exists {self.WAIT_LIMIT:.0f}s after "
                "its DELETE was accepted")
        return False
