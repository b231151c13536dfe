"""Instance state: ONE filtered DescribeInstances for everything in flight.

Upstream polled with a 10 s cache, so a node waited up to 10 s after its
instance was running.  Here an ``InstanceWatcher`` thread keeps the set of
instance ids that create and delete machines wait on and describes all of
them with a single ``instance-id`` filtered call (chunks of 200 values),
every ``interval`` seconds (0.5 by default) while the set is not empty,
and at once (after ``min_gap``) when a new id is added.  Machines read the
latest record with ``lookup`` -- a dict access on the loop thread, never a
cloud call.

A filter, not ``InstanceIds=``: EC2 is eventually consistent, and a fresh
instance id may not be describable yet; with ``InstanceIds`` the whole call
would fail with InvalidInstanceID.NotFound, with a filter the id is just
not in the answer yet.

Failure story: a failed or throttled describe (the read limiter is told by
AwsApi) is logged; the watcher keeps the previous records and tries again
after the next interval, so machines simply wait longer.  ``stop()`` ends
the thread; lookups then return the last records.

Threads: one, ``<provider>-describe``, the only writer of ``_records``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from nodepool.driver.aws import batchtags
from nodepool.driver.instance import Instance, InstanceState

__all__ = ["STATE_MAP", "InstanceWatcher", "Lookup", "to_instance",
           "instance_state", "tags_of"]

log = logging.getLogger(__name__)

#: EC2 instance state names → framework states (Libcloud's NODE_STATE_MAP)
STATE_MAP: Mapping[str, InstanceState] = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "shutting-down": InstanceState.STOPPING,
    "stopping": InstanceState.STOPPING,
    "terminated": InstanceState.DELETED,
    "stopped": InstanceState.ERROR,   # never comes back by itself
}
CHUNK = 200  # values per filter


def instance_state(record: Mapping[str, Any]) -> InstanceState:
    name = (record.get("State") or {}).get("Name", "")
    state = STATE_MAP.get(name)
    if state is None:
        log.warning("Instance %s has unknown state %r",
                    record.get("InstanceId"), name)
        return InstanceState.UNKNOWN
    return state


def tags_of(record: Mapping[str, Any]) -> dict[str, str]:
    """The instance's tags, plus ``nodepool_node_id`` derived for batches."""
    tags = {t["Key"]: t["Value"] for t in record.get("Tags") or []}
    node_id = batchtags.node_id_of(tags, record.get("AmiLaunchIndex"))
    if node_id:
        tags["nodepool_node_id"] = node_id
    return tags


def _ipv6(record: Mapping[str, Any]) -> str | None:
    if record.get("Ipv6Address"):
        return record["Ipv6Address"]
    for nic in record.get("NetworkInterfaces") or []:
        for address in nic.get("Ipv6Addresses") or []:
            if address.get("Ipv6Address"):
                return address["Ipv6Address"]
    return None


def to_instance(record: Mapping[str, Any], region: str,
                resources: Mapping[str, float] | None = None) -> Instance:
    """An ``Instance`` from a DescribeInstances/RunInstances record."""
    private = record.get("PrivateIpAddress")
    public = record.get("PublicIpAddress")
    ipv6 = _ipv6(record)
    placement = record.get("Placement") or {}
    return Instance(
        external_id=record["InstanceId"],
        state=instance_state(record),
        interface_ip=public or ipv6 or private,
        public_ipv4=public,
        private_ipv4=private,
        public_ipv6=ipv6,
        az=placement.get("AvailabilityZone"),
        region=region,
        cloud="AWS",
        host_id=placement.get("HostId"),
        metadata=tags_of(record),
        resources=dict(resources) if resources else None,
        node_properties={"spot": record.get("InstanceLifecycle") == "spot",
                         "fleet": False},
        driver_data={"instance_type": record.get("InstanceType")},
    )


@dataclass(frozen=True)
class Lookup:
    """A watched id's latest record; ``fresh`` once a describe that started
    after ``watch()`` has finished (so None then means "not there")."""

    record: Mapping[str, Any] | None
    fresh: bool


class InstanceWatcher:
    """Polls the watched ids (see module docstring).

    ``describe(filters)`` returns instance records for EC2 ``Filters``;
    the adapter passes a rate-limited DescribeInstances.
    """

    def __init__(self, name: str,
                 describe: Callable[[list[dict]], list[dict]],
                 interval: float = 0.5, min_gap: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.interval = interval
        self.min_gap = min_gap
        self.polls = 0
        self.errors = 0
        self.last_duration = 0.0
        self._describe = describe
        self._clock = clock
        self._cond = threading.Condition()
        self._watched: dict[str, float] = {}      # id -> watch() time
        self._records: dict[str, Mapping[str, Any]] = {}
        self._last_start = -1e9          # clock when the last describe began
        self._last_done_start = -1e9     # ... and of the last one finished
        self._urgent = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(f"watcher {self.name} already started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-describe", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def watch(self, instance_id: str) -> None:
        with self._cond:
            if instance_id in self._watched:
                return
            self._watched[instance_id] = self._clock()
            self._urgent = True
            self._cond.notify()

    def unwatch(self, instance_id: str) -> None:
        with self._cond:
            self._watched.pop(instance_id, None)
            self._records.pop(instance_id, None)

    def lookup(self, instance_id: str) -> Lookup:
        with self._cond:
            since = self._watched.get(instance_id)
            fresh = since is not None and self._last_done_start >= since
            return Lookup(self._records.get(instance_id), fresh)

    @property
    def watched(self) -> int:
        with self._cond:
            return len(self._watched)

    # -- the thread ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                ids = self._wait_for_turn()
                if ids is None:
                    return
                self._urgent = False
                started = self._clock()
                self._last_start = started
            records = self._poll(ids)
            with self._cond:
                self.last_duration = self._clock() - started
                if records is None:
                    continue
                for iid in ids:
                    if iid in self._watched:
                        record = records.get(iid)
                        if record is None:
                            self._records.pop(iid, None)
                        else:
                            self._records[iid] = record
                self._last_done_start = started

    def _wait_for_turn(self) -> list[str] | None:
        """Under the lock: block until a describe is due; the ids to ask."""
        while not self._stopping:
            if self._watched:
                gap = self.min_gap if self._urgent else self.interval
                wait = self._last_start + gap - self._clock()
                if wait <= 0:
                    return list(self._watched)
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _poll(self, ids: list[str]) -> dict[str, Mapping[str, Any]] | None:
        self.polls += 1
        out: dict[str, Mapping[str, Any]] = {}
        try:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                for record in self._describe(
                        [{"Name": "instance-id", "Values": chunk}]):
                    out[record["InstanceId"]] = record
        except Exception as e:
            self.errors += 1
            log.warning("Watcher %s: describing %d instances failed: %s",
                        self.name, len(ids), e)
            return None
        return out

    def stats(self) -> dict:
        return {"watched": self.watched, "polls": self.polls,
                "errors": self.errors,
                "last_duration": round(self.last_duration, 3)}
