"""Deleting instances: the batched TerminateInstances executor and machine.

Deletes go through the framework ``Batcher`` with ``DELETES``, one options
value next to its executor ``Terminator.terminate``: up to 50 ids per
TerminateInstances (the API takes 1,000, but AWS advises smaller batches,
and 50 already turns 100 deletes into 2-3 calls, leaving the rate for
creates).  Retry-path and leak deletes skip the queue (``immediate``) and
are sent alone at once (``Batcher.run_now``), off the loop thread
(behaviour 38).

Failure story of one call: EC2 fails the whole call when any id is unknown
(InvalidInstanceID.NotFound).  The executor then asks DescribeInstances
which ids still exist, terminates those, and reports "not found" (success
for a delete) for the rest -- it never reads ids out of the message text.
A throttled or transient failure of a whole call raises from the
executor; the resend policy of ``DELETES`` makes it every id's own answer
instead of resending a throttled call of 50 as 50 single calls.  The
machine raises it, the launcher's deleter keeps the node in ``deleting``
and retries later (behaviour 27).  Any other failure of a multi-id call
is resent id by id, so one bad id cannot fail the others.

``AwsDelete`` is the framework's ``DeleteMachine``
(``nodepool/driver/machines.py``): SUBMIT queues the id (or sends it
now), DELETING waits for the call, WAITING waits until the watcher sees
the instance ``terminated`` or gone, so its quota is free before the node
disappears; this module adds RELEASING, which releases the node's
dedicated host, if it has one.

Threads: ``AwsDelete`` is stepped by the provider's loop thread and never
calls the cloud there: ``send_delete`` queues the id on the delete batcher
or hands it to the adapter's delete-now pool, and the machine then looks at
futures and at the watcher's records (``lookup``, a dict access).
``Terminator.terminate`` runs on the ``<provider>-delete-batcher`` thread
for a batch, or on a ``<provider>-delete-now_N`` thread for an immediate
delete (``Batcher.run_now`` runs it on its caller's thread), and waits there
for TerminateInstances (and DescribeInstances after a NotFound); it keeps no
state, so it needs no lock.
"""

from __future__ import annotations

import enum
import logging
from concurrent.futures import Future
from typing import Any

from nodepool.driver import errors
from nodepool.driver.aws.dedicated import split_external_id
from nodepool.driver.aws.describe import instance_state
from nodepool.driver.aws.ports import DeletePort, TerminatorPort
from nodepool.driver.batcher import RESEND_UNLESS_REFUSED, BatchOptions
from nodepool.driver.instance import InstanceState
from nodepool.driver.machines import DeleteMachine

__all__ = ["DELETES", "Terminator", "AwsDelete", "MAX_IDS"]

log = logging.getLogger(__name__)

MAX_IDS = 50

#: The delete batcher's options.  1 s of quiet (at most 3 s in all) closes
#: a batch: short next to a node's lifetime, long enough for the releases
#: of a whole burst of jobs (handed over by the deleted-node worker every
#: ~0.5 s) to share one call, which leaves the rate budget to creates.  A
#: throttle, transient or access failure of a whole call is every id's
#: answer (the node is deleted again later); other failures are resent id
#: by id.
DELETES = BatchOptions(max_items=MAX_IDS, idle_timeout=1.0, max_wait=3.0,
                       resend=RESEND_UNLESS_REFUSED)


class Terminator:
    """TerminateInstances for a list of ids; one outcome per id (a
    throttled or transient failure of the call raises)."""

    def __init__(self, adapter: TerminatorPort):
        self.adapter = adapter

    def terminate(self, ids: list[str]) -> list[Any]:
        try:
            answer = self.adapter.api.mutate("terminate_instances",
                                             InstanceIds=list(ids))
        except errors.NotFoundError as e:
            if len(ids) == 1:
                return [e]
            return self._terminate_existing(ids)
        done = {x["InstanceId"] for x in
                answer.get("TerminatingInstances") or []}
        return [None if iid in done else errors.NotFoundError(iid)
                for iid in ids]

    def _terminate_existing(self, ids: list[str]) -> list[Any]:
        records = self.adapter.describe(
            [{"Name": "instance-id", "Values": list(ids)}])
        alive = [r["InstanceId"] for r in records
                 if instance_state(r) is not InstanceState.DELETED]
        outcome: dict[str, Any] = {iid: errors.NotFoundError(iid)
                                   for iid in ids}
        if alive:
            for iid, result in zip(alive, self.terminate(alive)):
                outcome[iid] = result
        return [outcome[iid] for iid in ids]


class AwsDelete(DeleteMachine):
    """TerminateInstances, queued or at once (``DeleteMachine``), then
    RELEASING the node's dedicated host, if it has one."""

    class State(enum.Enum):
        RELEASING = "releasing"

    STEPS = {State.RELEASING: "releasing"}

    #: stop waiting for "terminated" after this long (the call succeeded)
    WAIT_LIMIT = 300.0
    #: pause before asking again about a fresh instance EC2 does not know
    NOT_FOUND_RETRY = 2.0

    def __init__(self, adapter: DeletePort, external_id: Any,
                 immediate: bool = False):
        super().__init__(external_id, immediate)
        self.adapter = adapter
        self.instance_id, self.host_id = split_external_id(external_id)

    def submit(self):
        if self.instance_id is None:
            return self._release()
        return super().submit()

    def send_delete(self) -> Future:
        if self.immediate:
            return self.adapter.delete_now(self.instance_id)
        return self.adapter.delete_batcher.add(self.instance_id)

    def not_found(self):
        if self.adapter.created_recently(self.instance_id):
            # EC2 is eventually consistent: an instance made seconds
            # ago may be unknown to TerminateInstances for a moment.
            self.retry_at = self.clock() + self.NOT_FOUND_RETRY
            return self.Phase.SUBMIT
        return self.gone()

    def watch(self) -> None:
        self.adapter.watcher.watch(self.instance_id)

    def unwatch(self) -> None:
        self.adapter.watcher.unwatch(self.instance_id)

    def lookup(self):
        return self.adapter.watcher.lookup(self.instance_id)

    def is_deleted(self, record: dict) -> bool:
        return instance_state(record) is InstanceState.DELETED

    def wait_limit(self, record: dict):
        log.warning("Instance %s still %s %.0fs after terminate; "
                    "considered deleted", self.instance_id,
                    record["State"]["Name"], self.WAIT_LIMIT)
        return self.gone()

    def gone(self):
        """The instance is gone; release its dedicated host, if any."""
        self.unwatch()
        return self._release()

    def releasing(self):
        if not self.future.done():
            return self.State.RELEASING
        future, self.future = self.future, None
        try:
            future.result()
        except errors.NotFoundError:
            pass
        return self.Phase.DONE

    def _release(self):
        if self.host_id is None:
            return self.Phase.DONE
        self.future = self.adapter.release_host(self.host_id)
        return self.State.RELEASING
