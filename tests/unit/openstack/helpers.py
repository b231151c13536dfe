"""Builders for OpenStack unit tests: launch specs, server records, a
manual clock, and a stand-in adapter whose calls are futures the test
resolves by hand."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from nodepool.config.drivers.openstack import LABEL_SETTINGS, POOL_SETTINGS
from nodepool.config.model import CloudImage, Pool, PoolLabel
from nodepool.driver.backoff import AccessGate
from nodepool.driver.openstack.poller import ServerPoller
from nodepool.driver.openstack.servers import to_instance
from nodepool.driver.statemachine import LaunchSpec, RequestInfo


class ManualClock:
    def __init__(self, now: float = 1000.0):
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def make_spec(node_id: str = "0000000001", label: dict | None = None,
              pool: dict | None = None, image: dict | None = None,
              request: RequestInfo | None = None, az: str | None = None
              ) -> LaunchSpec:
    cloud_image = CloudImage(
        name="jammy", username="zuul",
        settings={"image-id": None, "image-name": "ubuntu-jammy",
                  "config-drive": None, **(image or {})})
    label_settings = {**LABEL_SETTINGS, "flavor-name": "m1.small",
                      "networks": [], "host-key-checking": False,
                      **(label or {})}
    plabel = PoolLabel(name="small", cloud_image="jammy", image=cloud_image,
                       settings=label_settings)
    ppool = Pool(name="main", provider_name="os", labels={"small": plabel},
                 settings={**POOL_SETTINGS, **(pool or {})})
    return LaunchSpec(node_id=node_id, hostname=f"np{node_id}",
                      provider_name="os", pool=ppool, label=plabel, az=az,
                      request=request or RequestInfo(id="200-0000000007"))


def server(sid: str = "srv-1", status: str = "ACTIVE", **extra) -> dict:
    record = {"id": sid, "name": "np1", "status": status,
              "metadata": {"nodepool_node_id": "0000000001",
                           "nodepool_provider_name": "os"},
              "addresses": {"private": [{"version": 4, "addr": "10.0.0.5",
                                         "OS-EXT-IPS:type": "fixed"}]},
              "flavor": {"vcpus": 1, "ram": 2048},
              "OS-EXT-AZ:availability_zone": "zone-a",
              "OS-EXT-STS:task_state": None, "hostId": "h1"}
    record.update(extra)
    return record


class StubAdapter:
    """What the machines use of an adapter; every call is a Future."""

    def __init__(self, clock: ManualClock):
        self.clock = clock
        self.poller = ServerPoller("test", fetch=list, clock=clock)
        self.access = AccessGate("test", clock=clock)
        self.creates: list[Future] = []
        self.finishes: list[Future] = []
        self.deletes: list[tuple[str, Future]] = []
        self.refused = 0
        self.floating = True

    def submit_create(self, machine) -> Future:
        self.creates.append(Future())
        return self.creates[-1]

    def wants_floating_ip(self, spec, record) -> bool:
        return self.floating

    def submit_finish(self, machine, record) -> Future:
        self.finishes.append(Future())
        return self.finishes[-1]

    def instance_from(self, record, **kw):
        return to_instance(record, region="RegionOne", cloud="fake", **kw)

    def quota_refused(self) -> None:
        self.refused += 1

    def delete_now(self, server_id: str) -> Future:
        self.deletes.append((server_id, Future()))
        return self.deletes[-1][1]

    def poll(self, *records) -> None:
        """A server list that started now and returned ``records``."""
        self.poller.publish(list(records), self.clock())

