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

``AwsDelete``: SUBMIT queues the id (or sends it now), TERMINATING waits
for the call, WAITING waits until the watcher sees the instance
``terminated`` or gone, so its quota is free before the node disappears;
RELEASING then releases the node's dedicated host, if it has one.
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
from nodepool.driver.batcher import BatchOptions, Resend
from nodepool.driver.instance import InstanceState
from nodepool.driver.statemachine import StateMachine

__all__ = ["DELETES", "Terminator", "AwsDelete", "MAX_IDS"]

log = logging.getLogger(__name__)

MAX_IDS = 50

#: The delete batcher's options.  1 s of quiet (at most 3 s in all) closes
#: a batch: short next to a node's lifetime, long enough for the releases
#: of a whole burst of jobs (handed over by the deleted-node worker every
#: ~0.5 s) to share one call, which leaves the rate budget to creates.  A
#: throttle or transient failure of a whole call is every id's answer (the
#: node is deleted again later); other failures are resent id by id.
DELETES = BatchOptions(max_items=MAX_IDS, idle_timeout=1.0, max_wait=3.0,
                       resend=Resend(alone=True, unless=errors.RETRYABLE))


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


class AwsDelete(StateMachine):
    class State(enum.Enum):
        SUBMIT = "submit"
        TERMINATING = "terminating"
        WAITING = "waiting"
        RELEASING = "releasing"
        DONE = "done"

    STEPS = {State.SUBMIT: "submit", State.TERMINATING: "terminating",
             State.WAITING: "waiting", State.RELEASING: "releasing"}
    TERMINAL = frozenset({State.DONE})

    #: stop waiting for "terminated" after this long (the call succeeded)
    WAIT_LIMIT = 300.0
    #: pause before asking again about a fresh instance EC2 does not know
    NOT_FOUND_RETRY = 2.0

    def __init__(self, adapter: DeletePort, external_id: Any,
                 immediate: bool = False):
        super().__init__()
        self.adapter = adapter
        self.external_id = external_id
        self.instance_id, self.host_id = split_external_id(external_id)
        self.immediate = immediate
        self.future: Future | None = None
        self.retry_at = 0.0

    def submit(self):
        if self.clock() < self.retry_at:
            return self.State.SUBMIT
        if self.instance_id is None:
            return self._release()
        if self.immediate:
            self.future = self.adapter.delete_now(self.instance_id)
        else:
            self.future = self.adapter.delete_batcher.add(self.instance_id)
        return self.State.TERMINATING

    def terminating(self):
        if not self.future.done():
            return self.State.TERMINATING
        future, self.future = self.future, None
        try:
            future.result()
        except errors.NotFoundError:
            if self.adapter.created_recently(self.instance_id):
                # EC2 is eventually consistent: an instance made seconds
                # ago may be unknown to TerminateInstances for a moment.
                self.retry_at = self.clock() + self.NOT_FOUND_RETRY
                return self.State.SUBMIT
            return self._gone()
        self.adapter.watcher.watch(self.instance_id)
        return self.State.WAITING

    def waiting(self):
        look = self.adapter.watcher.lookup(self.instance_id)
        if look.record is None:
            return self._gone() if look.fresh else self.State.WAITING
        if instance_state(look.record) is InstanceState.DELETED:
            return self._gone()
        if self.clock() - self.state_time > self.WAIT_LIMIT:
            log.warning("Instance %s still %s %.0fs after terminate; "
                        "considered deleted", self.instance_id,
                        look.record["State"]["Name"], self.WAIT_LIMIT)
            return self._gone()
        return self.State.WAITING

    def releasing(self):
        if not self.future.done():
            return self.State.RELEASING
        future, self.future = self.future, None
        try:
            future.result()
        except errors.NotFoundError:
            pass
        return self.State.DONE

    def _gone(self):
        """The instance is gone; release its dedicated host, if any."""
        self.adapter.watcher.unwatch(self.instance_id)
        return self._release()

    def _release(self):
        if self.host_id is None:
            return self.State.DONE
        self.future = self.adapter.release_host(self.host_id)
        return self.State.RELEASING
