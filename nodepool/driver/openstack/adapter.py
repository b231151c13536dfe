"""OpenStackAdapter: the ``driver: openstack`` provider, on openstacksdk.

Threads (what runs where, per provider):

- the provider loop steps ``OpenStackCreate``/``OpenStackDelete`` machines;
  a step never makes a cloud call;
- ``<provider>-create-N`` (CreatePool, sized from the rate for 1.5 s
  creates) runs ``POST /servers``;
- ``<provider>-fip_N`` attaches floating IPs to servers that are ACTIVE
  (apart from the creates, which may queue on the rate limiter);
- ``<provider>-delete_N`` runs floating-IP releases and ``DELETE``s;
- ``<provider>-servers`` (ServerPoller) lists all servers once a second
  while any machine waits, for all of them at once;
- pool workers and the cleanup worker call the read-only methods (quota,
  images, ``list_instances``, leaks), which cache their answers; a
  listing older than it may be is fetched on the asking thread.

Shared state: ``attached_ips`` (server id -> the floating address we
attached) is written by the fip threads and popped by the delete threads,
without a lock: each access is one dict operation.  The inventory, quota
limits, pending creates, poller and leak finder keep their own locks (their
modules).  The loop thread never waits for the cloud: every call it needs is
a ``Future`` from one of the pools above.

Every call goes through ``OpenStackApi``: mutating calls spaced by the
provider's ``rate`` (seconds between calls), reads at ten times that
budget, errors classified into framework exceptions, throttles and 5xx
handled there and only there (``nodepool.driver.limitedapi``).

Failure story, in short: throttling and 5xx are repeated in the API
alone and at worst fail one launch attempt, never a request by
themselves; quota refusals abort the node (the request is retried) and
refresh the cached limits; a server in ERROR is a failed attempt unless
its fault names a quota; names that do not exist (flavor, image,
network) make the label unusable; nothing is created without the
metadata leak cleanup needs.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Mapping

from nodepool.driver import errors
from nodepool.driver.adapter import CloudAdapter
from nodepool.driver.backoff import log_failure
from nodepool.driver.createpool import CreatePool, create_pool_size
from nodepool.driver.instance import Instance, InstanceState, Resource
from nodepool.driver.machines import PendingCreates
from nodepool.driver.openstack.api import (OpenStackApi, calls_per_second,
                                           load_cloud_region)
from nodepool.driver.openstack.create import OpenStackCreate, ServerCreator
from nodepool.driver.openstack.delete import OpenStackDelete, ServerDeleter
from nodepool.driver.openstack.inventory import Inventory
from nodepool.driver.openstack.leaks import FLOATING_IPS, PORTS, LeakFinder
from nodepool.driver.openstack.poller import ServerPoller
from nodepool.driver.openstack.quota import QuotaLimits, label_cost
from nodepool.driver.openstack.addresses import needs_floating_ip
from nodepool.driver.openstack.servers import server_state, to_instance
from nodepool.driver.quota import Quota
from nodepool.driver.statemachine import LaunchSpec, StateMachine

__all__ = ["OpenStackAdapter"]

#: POST /servers latency the create pool is sized for (Nova: ~0.5-2 s)
CREATE_LATENCY = 1.5
#: how old a server list list_instances may answer from
LIST_CACHE_SECONDS = 2.0


class OpenStackAdapter(CloudAdapter):
    leak_types = ("instances", PORTS, FLOATING_IPS)

    def __init__(self, provider, log: logging.Logger | None = None,
                 cloud_region=None, connect=None):
        super().__init__(provider, log)
        settings = provider.settings
        rate = provider.rate if provider.rate is not None else 1.0
        workers = create_pool_size(calls_per_second(rate), CREATE_LATENCY)
        region = cloud_region or load_cloud_region(
            settings["cloud"], settings.get("region-name"))
        self.api = OpenStackApi(provider.name, region, rate,
                                max_connections=2 * workers + 8,
                                connect=connect, access=self.access)
        self.inventory = Inventory(self.api)
        #: what nodes record as ``region``: the provider's ``region-name``
        #: (None without one, even if clouds.yaml names a region), as
        #: upstream writes it
        self.region = settings.get("region-name")
        self.limits = QuotaLimits(self._compute_limits, self._volume_limits,
                                  self._uses_volumes)
        self.create_pool = CreatePool(provider.name, workers)
        self.delete_pool = ThreadPoolExecutor(
            max_workers=max(2, workers // 2),
            thread_name_prefix=f"{provider.name}-delete")
        self.fip_pool = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix=f"{provider.name}-fip")
        self.poller = ServerPoller(provider.name, self._list_all)
        self.creator = ServerCreator(self)
        self.deleter = ServerDeleter(self)
        self.leaks = LeakFinder(
            self, float(settings.get("port-cleanup-interval", 600) or 0),
            bool(settings.get("clean-floating-ips", False)))
        #: the latest attempt of each node: a new one abandons the last
        self.pending = PendingCreates(provider.launch_timeout or 3600)
        #: floating IP addresses this process attached, by server id
        self.attached_ips: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.create_pool.shutdown(wait=False)
        self.delete_pool.shutdown(wait=False, cancel_futures=False)
        self.fip_pool.shutdown(wait=False, cancel_futures=True)
        self.poller.stop()

    # -- create ---------------------------------------------------------------
    def create_machine(self, spec: LaunchSpec) -> StateMachine:
        return self.pending.attempt(OpenStackCreate(self, spec))

    def submit_create(self, machine: OpenStackCreate) -> Future:
        return self.create_pool.submit(self.creator.create, machine.spec)

    def wants_floating_ip(self, spec: LaunchSpec, record: Mapping) -> bool:
        """Whether an ACTIVE server goes through ``creator.finish``;
        from cached data only (the provider loop asks)."""
        if not spec.pool.settings.get("auto-floating-ip", True):
            return False
        networks = self.inventory.networks.peek()
        if networks is not None and not any(n.external for n in networks):
            return False               # nowhere to get a floating IP from
        return needs_floating_ip(record,
                                 self.inventory.address_rules(fetch=False))

    def submit_finish(self, machine: OpenStackCreate, record) -> Future:
        # Not the create pool: its queue may hold many creates waiting for
        # the rate limiter, and a ready server must not wait behind them.
        return self.fip_pool.submit(self.creator.finish, machine.spec,
                                    record)

    def image_id(self, spec: LaunchSpec) -> str:
        """The Glance image id a launch boots from (worker threads only)."""
        label = spec.label
        if label.diskimage:
            if spec.image_external_id and \
                    not str(spec.image_external_id).startswith("/"):
                return str(spec.image_external_id)
            raise errors.ConfigurationError(
                f"no uploaded image id for diskimage {label.diskimage}",
                stat_key="error.config")
        settings = label.image.settings if label.image else {}
        if settings.get("image-id"):
            return settings["image-id"]
        name = settings.get("image-name") or label.cloud_image
        image_id = self.inventory.image_id_by_name(name)
        if image_id is None:
            raise errors.ConfigurationError(f"no image named {name!r}",
                                            stat_key="error.config")
        return image_id

    def quota_refused(self) -> None:
        """The cloud refused for quota: ask for its limits again."""
        self.limits.invalidate()

    def instance_from(self, record: Mapping, **kw) -> Instance:
        """An Instance of a server record; never calls the cloud."""
        return to_instance(
            record, region=self.region, cloud=self.api.cloud,
            rules=self.inventory.address_rules(fetch=False),
            flavor_by_id=self._cached_flavor, **kw)

    # -- delete ---------------------------------------------------------------
    def delete_machine(self, external_id, immediate: bool = False
                       ) -> StateMachine:
        return OpenStackDelete(self, external_id, immediate)

    def delete_now(self, server_id: str) -> Future:
        return self.delete_pool.submit(self.deleter.delete, server_id)

    def may_have_floating_ips(self) -> bool:
        return any(pool.settings.get("auto-floating-ip", True)
                   for pool in self.provider.pools.values())

    # -- listing --------------------------------------------------------------
    def _list_all(self) -> list[dict]:
        return self.api.list_servers()

    def _fresh_servers(self, max_age: float) -> list[dict]:
        records = self.poller.snapshot(max_age)
        if records is None:
            started = self.poller.now()
            records = self._list_all()
            self.poller.publish(records, started)
        return records

    def server_ids(self, max_age: float = LIST_CACHE_SECONDS) -> set[str]:
        return {r["id"] for r in self._fresh_servers(max_age)}

    def list_instances(self) -> Iterable[Instance]:
        records = self._fresh_servers(LIST_CACHE_SECONDS)
        return [self.instance_from(r) for r in records
                if server_state(r) is not InstanceState.DELETED]

    def list_resources(self) -> Iterable[Resource]:
        return self.leaks.resources()

    def delete_resource(self, resource: Resource) -> None:
        self.leaks.delete(resource)

    def console_log(self, external_id) -> str | None:
        api = self.api
        answer = api.read("console log", lambda: api.conn.compute.
                          get_server_console_output(external_id))
        return (answer or {}).get("output", "")

    # -- quota ----------------------------------------------------------------
    def _labels(self):
        for pool in self.provider.pools.values():
            yield from pool.labels.values()

    def _uses_volumes(self) -> bool:
        return any(label.settings.get("boot-from-volume")
                   for label in self._labels())

    def _compute_limits(self) -> Mapping:
        return self.api.compute("GET", "/limits", write=False,
                                operation="compute limits")

    def _volume_limits(self) -> Mapping:
        body = self.api.get_json("block_storage", "/limits",
                                 operation="volume limits")
        return (body or {}).get("limits", {}).get("absolute", {})

    def quota_limits(self) -> Quota:
        return self.limits.get()

    def offering(self, pool, label) -> str | None:
        """``<zones or region>/<flavor>``: Nova's scheduler places a
        flavor in the pool's zones (all of them when it names none)."""
        zones = pool.settings.get("availability-zones") or []
        place = ",".join(zones) or self.provider.settings.get(
            "region-name") or "any-zone"
        size = label.settings.get("flavor-name") or \
            f"min-ram:{label.settings.get('min-ram')}"
        return f"{place}/{size}"

    def label_quota(self, label) -> Quota:
        try:
            flavor = self.inventory.flavor(label.settings)
        except errors.DriverError as e:
            log_failure(self.log, e, "No flavor cost for label %s: %s",
                        label.name, e)
            flavor = None
        return label_cost(label.settings, flavor)

    # -- images and labels ----------------------------------------------------
    def image_available(self, label) -> bool:
        if label.image is None or label.diskimage:
            return label.image is not None
        settings = label.image.settings
        if settings.get("image-id"):
            return True
        try:
            name = settings.get("image-name") or label.cloud_image
            return self.inventory.image_id_by_name(name) is not None
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not check image of %s: %s",
                        label.name, e)
            return True

    def label_usable(self, label) -> bool:
        if label.image is None:
            return False
        try:
            self.inventory.flavor(label.settings)
        except errors.ConfigurationError as e:
            self.log.warning("Label %s cannot launch: %s", label.name, e)
            return False
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not check flavor of %s: %s",
                        label.name, e)
        return True

    # -- small cached helpers (never call the cloud from the loop) ------------
    def _cached_flavor(self, flavor_id):
        flavors = self.inventory.flavors.peek() or []
        return next((f for f in flavors if f.id == str(flavor_id)), None)

    # -- measurements ---------------------------------------------------------
    def stats(self) -> dict:
        return {"api": self.api.stats(),
                "create_pool": {"workers": self.create_pool.workers,
                                "busy": self.create_pool.busy,
                                "queued": self.create_pool.queued},
                "poller": dict(self.poller.counts,
                               watched=self.poller.watched),
                "quota_fetches": self.limits.fetches}
