"""A fake cloud and its adapter, for launcher tests and the core benchmark.

``FakeCloud`` is an in-memory, thread-safe cloud with knobs to script
behaviour (create latency, boot time, the next N create errors, quota
limits).  ``FakeAdapter`` drives it through the same framework pieces a real
driver uses: creates go through a ``CreatePool``, deletes through a
``Batcher``, and every mutating call through the provider's
``AccessGate`` and a ``RateLimiter``.  Its machines are the framework's
(``CreateMachine``, ``DeleteMachine`` and ``PendingCreates`` in
``machines.py``); this module gives only the fake cloud's step: BOOTING
until the instance runs.

It is selected with ``driver: fake`` only where a test registers it; it is
never part of a production config.

Failure story: what a test scripts (``create_errors``, ``delete_errors``,
``no_capacity``, the instance limit) is raised from the cloud call and
meets the framework's launch policy like a real cloud's error: an
``AccessError`` closes the provider's gate and the call is sent again
when the gate admits one, anything else fails the attempt (the
launcher's launch-retries or deleter repeat it).  Nothing here repeats a
call: the fake has no ``LimitedApi``.

Threads: cloud calls run on the create pool's workers and the delete
batcher's thread, machine steps on the provider's loop thread; the cloud's
state is guarded by its one lock.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from nodepool.driver.adapter import Adapter, Machinery
from nodepool.driver.batcher import Batcher, BatchOptions
from nodepool.driver.createpool import CreatePool, create_pool_size
from nodepool.driver.errors import CapacityError, NotFoundError, QuotaError
from nodepool.driver.instance import Instance, InstanceState, Resource
from nodepool.driver.machines import (CreateMachine, DeleteMachine,
                                      PendingCreates)
from nodepool.driver.quota import Quota
from nodepool.driver.ratelimit import RateLimiter
from nodepool.driver.statemachine import LaunchSpec, StateMachine

log = logging.getLogger(__name__)

T = TypeVar("T")


class FakeCloud:
    """Instances in a dict, guarded by one lock."""

    def __init__(self, create_latency: float = 0.0, boot_time: float = 0.0,
                 limits: Quota | None = None, ip: str = "127.0.0.1"):
        self.create_latency = create_latency
        self.boot_time = boot_time
        self.limits = limits or Quota.unlimited()
        self.ip = ip
        self.create_errors: list[BaseException] = []
        # Pools (by name) the cloud has no capacity for: creates for them
        # fail with CapacityError, as a zone out of an instance type does.
        self.no_capacity: set[str] = set()
        self.delete_errors: list[BaseException] = []
        self.instances: dict[str, dict] = {}
        self.resources: dict[str, Resource] = {}
        self.calls: dict[str, int] = {}
        # The sizes of the last delete batches (bounded: a long run makes
        # many).
        self.delete_batches: collections.deque[int] = collections.deque(
            maxlen=1000)
        # Client token -> instance id, while the instance exists.
        self.tokens: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def create(self, metadata: dict, cores: int = 1,
               token: str | None = None, ram: int = 1024) -> str:
        """Create an instance (blocks for ``create_latency``).

        Like EC2's ClientToken, a repeated ``token`` returns the instance
        its first call created instead of a new one.
        """
        if self.create_latency:
            time.sleep(self.create_latency)  # emulates the cloud's latency
        with self._lock:
            self._count("create")
            if token is not None and token in self.tokens:
                return self.tokens[token]
            if self.create_errors:
                raise self.create_errors.pop(0)
            pool = metadata.get("nodepool_pool_name")
            if pool in self.no_capacity:
                self._count("capacity_error")
                self.calls.setdefault(f"capacity_error:{pool}", 0)
                self.calls[f"capacity_error:{pool}"] += 1
                raise CapacityError(f"fake cloud: no capacity in {pool}")
            used = len(self.instances)
            if used + 1 > self.limits.get("instances", float("inf")):
                raise QuotaError("fake cloud: instance quota exceeded")
            iid = f"fake-{next(self._ids):06d}"
            self.instances[iid] = {"metadata": dict(metadata),
                                   "created": time.monotonic(),
                                   "cores": cores, "ram": ram,
                                   "token": token}
            if token is not None:
                self.tokens[token] = iid
            return iid

    def describe(self, iid: str) -> Instance | None:
        with self._lock:
            data = self.instances.get(iid)
        if data is None:
            return None
        running = time.monotonic() - data["created"] >= self.boot_time
        return Instance(
            external_id=iid,
            state=InstanceState.RUNNING if running else InstanceState.PENDING,
            interface_ip=self.ip if running else None,
            private_ipv4=self.ip if running else None,
            public_ipv4=self.ip if running else None,
            az="fake-az1", region="fake-region", cloud="fake",
            metadata=data["metadata"],
            resources={"instances": 1, "cores": data["cores"],
                       "ram": data.get("ram", 1024)})

    def delete_many(self, ids: list[str]) -> list[object]:
        with self._lock:
            self._count("delete")
            self.delete_batches.append(len(ids))
            if self.delete_errors:
                raise self.delete_errors.pop(0)
            out: list[object] = []
            for iid in ids:
                data = self.instances.pop(iid, None)
                if data is None:
                    out.append(NotFoundError(iid))
                else:
                    self.tokens.pop(data.get("token"), None)
                    out.append(None)
            return out

    def list(self) -> list[Instance]:
        with self._lock:
            ids = list(self.instances)
        return [i for i in map(self.describe, ids) if i is not None]


class FakeCreate(CreateMachine):
    """The create call on the create pool (``CreateMachine``), then
    BOOTING until the fake cloud says the instance runs."""

    class State(enum.Enum):
        BOOTING = "booting"

    STEPS = {State.BOOTING: "booting"}
    log = log

    def __init__(self, adapter: "FakeAdapter", spec: LaunchSpec):
        super().__init__(spec, adapter.access)
        self.adapter = adapter

    def send_create(self) -> Future:
        settings = self.spec.label.settings
        return self.adapter.create_pool.submit(
            self.adapter.call_create, self.spec.metadata,
            self.spec.client_token, settings.get("cores", 1),
            settings.get("ram", 1024))

    def identify(self, answer: str) -> str:
        return answer

    def answered(self, answer: str):
        return self.booting()

    def delete_orphan(self, external_id: str) -> None:
        self.adapter.batcher.add(external_id)

    def booting(self):
        instance = self.adapter.cloud.describe(self.external_id)
        if instance is None or instance.state != InstanceState.RUNNING:
            return self.State.BOOTING
        self.instance = instance
        return self.Phase.READY


@dataclass(frozen=True)
class Listed:
    """The fake cloud's record of an instance, read now (always fresh)."""

    record: Instance | None
    fresh: bool = True


class FakeDelete(DeleteMachine):
    """The delete through the batcher (or at once, ``DeleteMachine``);
    the fake cloud forgets an instance when its delete is answered."""

    def __init__(self, adapter: "FakeAdapter", external_id,
                 immediate: bool):
        super().__init__(external_id, immediate)
        self.adapter = adapter

    def send_delete(self) -> Future:
        if self.immediate:
            # Not batched, but still off the loop thread.
            return self.adapter.create_pool.submit(
                self.adapter.batcher.run_now, self.external_id)
        return self.adapter.batcher.add(self.external_id)

    def lookup(self) -> Listed:
        return Listed(self.adapter.cloud.describe(self.external_id))

    def is_deleted(self, record: Instance) -> bool:
        return record.state == InstanceState.DELETED


#: one cloud per provider name, so a test can reach the cloud its launcher uses
CLOUDS: dict[str, FakeCloud] = {}


def cloud_for(provider_name: str) -> FakeCloud:
    return CLOUDS.setdefault(provider_name, FakeCloud())


class FakeAdapter(Adapter):
    """Adapter over the provider's ``FakeCloud`` (see ``cloud_for``)."""

    def __init__(self, provider, log=None, cloud: FakeCloud | None = None):
        super().__init__(provider, log)
        self.cloud = cloud or cloud_for(provider.name)
        settings = provider.settings
        self.cloud.create_latency = float(settings.get("create-latency", 0))
        self.cloud.boot_time = float(settings.get("boot-time", 0))
        max_servers = settings.get("max-servers", float("inf"))
        self.cloud.limits = (Quota(instances=max_servers)
                             if max_servers != float("inf") else Quota())
        rate = provider.rate or 0
        self.limiter = RateLimiter(f"{provider.name}-mutate", rate)
        self.create_pool = CreatePool(
            provider.name, create_pool_size(rate, self.cloud.create_latency
                                             or 0.1))
        self.batcher = Batcher(f"{provider.name}-delete", self._delete_batch,
                               BatchOptions(max_items=50, idle_timeout=0.05))
        self.pending = PendingCreates(provider.launch_timeout or 3600)

    def machinery(self) -> Machinery:
        return Machinery(limiters=(self.limiter,),
                         create_pools=(self.create_pool,),
                         batchers=(self.batcher,))

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()
        self.create_pool.shutdown(wait=False)

    def call_create(self, metadata: dict, token: str | None = None,
                    cores: int = 1, ram: int = 1024) -> str:
        """One instance of the label's size (``cores``/``ram`` settings)."""
        return self._call(self.cloud.create, metadata, cores=cores,
                          token=token, ram=ram)

    def _delete_batch(self, ids: list[str]) -> list[object]:
        return self._call(self.cloud.delete_many, ids)

    def _call(self, call: Callable[..., T], *args, **kwargs) -> T:
        """One cloud call through the provider's access gate (it raises
        while the gate backs off) and the rate limiter, as a real
        driver's API client makes it."""
        ticket = self.access.admit()
        try:
            with self.limiter:
                result = call(*args, **kwargs)
        except Exception as exc:   # told to the gate, then raised
            self.access.answered(ticket, exc)
            raise
        self.access.answered(ticket, None)
        return result

    def create_machine(self, spec: LaunchSpec) -> StateMachine:
        return self.pending.attempt(FakeCreate(self, spec))

    def delete_machine(self, external_id, immediate: bool = False
                       ) -> StateMachine:
        return FakeDelete(self, external_id, immediate)

    def list_instances(self) -> Iterable[Instance]:
        return self.cloud.list()

    def list_resources(self) -> Iterable[Resource]:
        return list(self.cloud.resources.values())

    def delete_resource(self, resource: Resource) -> None:
        self.cloud.resources.pop(resource.id, None)

    def quota_limits(self) -> Quota:
        return self.cloud.limits

    def label_quota(self, label) -> Quota:
        return Quota(instances=1, cores=label.settings.get("cores", 1),
                     ram=label.settings.get("ram", 1024))
