"""Creating instances: the RunInstances executor and the create machine.

``InstanceCreator.send(specs)`` makes ONE RunInstances call for one or
more launches of the same specification (``params.batch_key``) and returns
one outcome per launch: the instance record, or an exception.  It runs on
a create-pool worker, never on the provider loop.

Leak safety: every instance is tagged *at creation* (TagSpecifications on
the instance and its volumes).  A lone launch gets all its tags at once.
A batch gets the shared tags plus the batch tags of ``batchtags``
(provider, pool, ClientToken, node ids in launch order, and the first
node's id as ``nodepool_node_id`` -- the anchor), so from its first moment
each instance names its provider and a node: through ``AmiLaunchIndex``
its own for us, the anchor for upstream Nodepool's leak rule (which then
reaps the batch once the anchor's node is gone).  The volumes get the
same tags without the anchor: upstream would otherwise try to delete a
sibling's attached root volume, and the tagger never retags volumes.
The per-node tags follow through the ``Tagger``, siblings before the
anchor (whose instance already names its own node).  The ClientToken
makes a repeated call (after a throttle or a 5xx) return the same
instances instead of new ones.  A lone launch uses its attempt's token
(``LaunchSpec.client_token``, stored in the node's ``driver_data`` before
the call), so the API's repeat of it (``LimitedApi``, the one layer that
repeats a throttled or transiently failed call) is idempotent.  A batch
uses a fresh token per call: it is not recorded per node, and need not be,
because the batch tags name every instance's node from the instance's
first moment -- after a crash ``find_instances(node_id)`` finds it.
Partial fulfilment (EC2 started fewer than asked): the launches without
an instance get ``Unfulfilled``; their machines submit again at once (no
back-off), and the batcher sends smaller calls for that specification.

``AwsCreate`` is the state machine.  Its SUBMIT and CREATING steps (a
throttle or a 5xx the API gave up on fails the attempt; an access error
waits for the provider's gate), the partial-batch resubmit and the
abandoning of a replaced attempt are the framework's (``CreateMachine`` in
``nodepool/driver/machines.py``); this module gives the calls and BOOTING,
which reads the watcher's latest record until the instance runs.
Capacity and quota errors abort the node, configuration errors fail it.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from concurrent.futures import Future
from typing import Any

from nodepool.driver import errors
from nodepool.driver.aws import batchtags, params
from nodepool.driver.aws.describe import instance_state
from nodepool.driver.aws.ports import CreatePort, CreatorPort
from nodepool.driver.instance import InstanceState
from nodepool.driver.machines import CreateMachine
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["InstanceCreator", "AwsCreate", "map_instances",
           "external_id_of"]

log = logging.getLogger(__name__)


def external_id_of(record: dict) -> dict:
    """A node's ``external_id`` as upstream Nodepool writes it:
    ``{"instance": <id>}``, plus ``"host"`` for a dedicated host."""
    external_id = {"instance": record["InstanceId"]}
    if record.get("HostId"):
        external_id["host"] = record["HostId"]
    return external_id


def map_instances(specs: list[LaunchSpec], instances: list[dict]
                  ) -> list[dict | None]:
    """The instance of each launch (None where EC2 started too few).

    Slot ``i`` belongs to the instance with ``AmiLaunchIndex`` i, exactly
    as ``batchtags.node_id_of`` reads it back; records without an index
    fill the remaining slots in answer order.
    """
    slots: list[dict | None] = [None] * len(specs)
    rest = []
    for record in instances:
        index = record.get("AmiLaunchIndex")
        if isinstance(index, int) and 0 <= index < len(slots) \
                and slots[index] is None:
            slots[index] = record
        else:
            rest.append(record)
    for i, slot in enumerate(slots):
        if slot is None and rest:
            slots[i] = rest.pop(0)
    for record in rest:
        log.error("RunInstances returned an unexpected instance %s",
                  record.get("InstanceId"))
    return slots


class InstanceCreator:
    """Sends RunInstances for the adapter (see module docstring)."""

    def __init__(self, adapter: CreatorPort):
        self.adapter = adapter
        self.partial = 0      # calls that started fewer instances than asked

    def send(self, specs: list[LaunchSpec], admitted: bool = False
             ) -> list[Any]:
        first = specs[0]
        image = self.adapter.images.resolve(first.label,
                                            first.image_external_id)
        call = params.launch_params(first, image)
        if len(specs) == 1 and first.client_token:
            # The attempt's token, recorded in the node before this call:
            # repeating the call (a 5xx that did create) names the same
            # instance.
            token = first.client_token
        else:
            token = uuid.uuid4().hex
        if len(specs) == 1:
            specifications = params.tag_specifications(params.all_tags(first))
        else:
            tags = params.shared_tags(first)
            tags.update(batchtags.encode(token, [s.node_id for s in specs]))
            volume_tags = {k: v for k, v in tags.items()
                           if k != batchtags.NODE_ID}
            specifications = (
                params.tag_specifications(tags, ("instance",)) +
                params.tag_specifications(volume_tags, ("volume",)))
        call.update(MinCount=1, MaxCount=len(specs), ClientToken=token,
                    TagSpecifications=specifications)
        started = time.monotonic()
        answer = self.adapter.api.mutate("run_instances", admitted=admitted,
                                         **call)
        log.info("RunInstances for %d node(s) %s started %d instance(s) "
                 "in %.2fs", len(specs), [s.node_id for s in specs][:3],
                 len(answer.get("Instances") or []),
                 time.monotonic() - started)
        slots = map_instances(specs, answer.get("Instances") or [])
        outcomes: list[Any] = []
        for spec, record in zip(specs, slots):
            if record is None:
                outcomes.append(errors.Unfulfilled(
                    f"EC2 started {len(answer.get('Instances') or [])} of "
                    f"{len(specs)} instances; node {spec.node_id} "
                    "is launched again at once"))
                continue
            outcomes.append(record)
        if len(specs) > 1:
            # Siblings first: until retagged they carry the anchor's id.
            pairs = list(zip(specs, slots))
            for spec, record in pairs[1:] + pairs[:1]:
                if record is not None:
                    self.adapter.tagger.add(record["InstanceId"],
                                            params.node_tags(spec))
        if any(r is None for r in slots):
            self.partial += 1
        return outcomes

    def send_one(self, spec: LaunchSpec) -> dict:
        outcome = self.send([spec])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class AwsCreate(CreateMachine):
    """RunInstances through the batcher or pool (``CreateMachine``),
    then BOOTING until the watcher sees the instance run."""

    class State(enum.Enum):
        BOOTING = "booting"

    STEPS = {State.BOOTING: "booting"}
    log = log

    def __init__(self, adapter: CreatePort, spec: LaunchSpec):
        super().__init__(spec, adapter.access)
        self.adapter = adapter
        self.instance_id: str | None = None

    def send_create(self) -> Future:
        return self.adapter.submit_create(self)

    def identify(self, record: dict) -> dict:
        return external_id_of(record)

    def answered(self, record: dict):
        self.instance_id = record["InstanceId"]
        self.adapter.created(self.instance_id)
        self.adapter.watcher.watch(self.instance_id)
        return self.State.BOOTING

    def delete_orphan(self, external_id: dict) -> None:
        self.adapter.delete_now(external_id)

    def booting(self):
        record = self.adapter.watcher.lookup(self.instance_id).record
        if record is None:
            return self.State.BOOTING
        state = instance_state(record)
        if state is InstanceState.RUNNING:
            self.adapter.watcher.unwatch(self.instance_id)
            self.instance = self.adapter.node_instance(
                record, self.spec.label, self.external_id)
            return self.Phase.READY
        if state in (InstanceState.DELETED, InstanceState.ERROR,
                     InstanceState.STOPPING):
            self.adapter.watcher.unwatch(self.instance_id)
            reason = (record.get("StateReason") or {}).get("Message", "")
            raise errors.LaunchError(
                f"instance {self.instance_id} is "
                f"{record['State']['Name']} {reason}".strip(),
                stat_key="error.status")
        return self.State.BOOTING
