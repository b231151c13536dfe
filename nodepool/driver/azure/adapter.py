"""AzureAdapter: the ``driver: azure`` provider, on the Azure SDK.

Threads (what runs where, per provider):

- the provider loop steps ``AzureCreate``/``AzureDelete`` machines; a
  step never makes a cloud call;
- ``<provider>-create-N`` (CreatePool, sized from ``rate``) sends every
  write: the PUTs of public IPs, NICs and VMs and every DELETE, each with
  ``polling=False`` -- ARM accepts it and the machine watches the
  resource's ``provisioningState`` afterwards;
- ``<provider>-read_N`` (four threads) refreshes the shared listings of
  VMs, NICs, public IPs and disks while machines wait on them, and runs
  the short lookups a launch needs first (resource group, image);
- pool workers and the cleanup worker call the read-only methods (quota,
  images, ``list_instances``, ``list_resources``), which cache.

Shared state: ``_group_lock`` makes the resource group check (and create)
happen once, whichever read thread prepares a launch first (``_group_ready``
is read without it, then checked again under it; the calls are made holding
it, so the other read threads wait for them).  The write queue
(``writes.py``), listings (``listing.py``), size, usage and image caches and
pending creates keep their own locks; the SDK clients (``auth.py``) are
shared by every thread above.  The loop thread never waits for the cloud:
every call it needs is a ``Future`` from one of the pools.

Every call goes through ``AzureApi``: writes at ``rate`` per second (a
rate, not a delay: ``rate: 2`` allows two writes each second), reads at
ten times that, 429 answers reported to the limiter with their
``Retry-After``, errors classified into framework exceptions.  Endpoints
and credentials come from the ``auth-path`` file (``auth.py``), TLS trust
from ``REQUESTS_CA_BUNDLE``.

Failure story: see each module; in short, throttling and transient errors
are retried and never fail a request by themselves; quota and capacity
errors abort the node (the request is retried); configuration errors fail
it; a failed VM provisioning fails the attempt; everything a launch
creates is named after the VM, which is the node's ``external_id`` from
the first step, so a failed or crashed launch can always be cleaned up.
The provider does not start without a network (``subnet-id`` or
``network``) or a readable ``auth-path``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from nodepool.driver import errors
from nodepool.driver.adapter import CloudAdapter
from nodepool.driver.azure import leaks, params
from nodepool.driver.azure.api import AzureApi
from nodepool.driver.azure.auth import Clients, load_auth
from nodepool.driver.azure.create import AzureCreate, private_address, \
    public_address
from nodepool.driver.azure.delete import AzureDelete
from nodepool.driver.azure.errors import CREATE
from nodepool.driver.azure.images import ImageResolver
from nodepool.driver.azure.listing import Listing
from nodepool.driver.azure.quota import SizeCatalog, UsageCache, \
    resources_of
from nodepool.driver.azure.writes import EARLY, NORMAL, URGENT, \
    PriorityWrites
from nodepool.driver.backoff import log_failure
from nodepool.driver.createpool import CreatePool, create_pool_size
from nodepool.driver.instance import Instance, InstanceState, Resource
from nodepool.driver.machines import PendingCreates
from nodepool.driver.quota import Quota
from nodepool.driver.statemachine import LaunchSpec, StateMachine

__all__ = ["AzureAdapter"]

#: seconds an ARM write takes to be accepted (the pool is sized for it)
CALL_LATENCY = 1.0
#: how old ``list_instances``/``list_resources`` answers may be
LIST_MAX_AGE = 2.0
READ_THREADS = 4

STATES = {"Creating": InstanceState.PENDING,
          "Updating": InstanceState.RUNNING,
          "Succeeded": InstanceState.RUNNING,
          "Failed": InstanceState.ERROR,
          "Canceled": InstanceState.ERROR,
          "Deleting": InstanceState.STOPPING}

# (client attribute, operations attribute) per listing kind
OPERATIONS = {"vms": ("compute", "virtual_machines"),
              "nics": ("network", "network_interfaces"),
              "pips": ("network", "public_ip_addresses"),
              "disks": ("compute", "disks")}
ARM_TYPES = {"vms": "Microsoft.Compute/virtualMachines",
             "nics": "Microsoft.Network/networkInterfaces",
             "pips": "Microsoft.Network/publicIPAddresses",
             "disks": "Microsoft.Compute/disks",
             "images": "Microsoft.Compute/images"}


def listing_interval(rate: float) -> float:
    """Seconds between refreshes of one listing while machines wait on it.

    A node waits on about three listings (public IP, NIC, VM); nodes start
    at about ``rate / 3`` per second, so ``5 / rate`` keeps the listing
    calls near two per node whatever the rate (each costs ~3 ms of CPU
    plus ~0.2 ms per resource listed), within 0.25 s (fast clouds, tests)
    and 2 s (slow ones).
    """
    if rate <= 0:
        return 0.25
    return max(0.25, min(2.0, 5.0 / rate))


def vm_instance(vm: Mapping, resources: Mapping[str, float] | None,
                location: str) -> Instance:
    """A VM as a node sees it, by upstream's rules: ``external_id`` the VM
    name, ``cloud`` ``Azure``, ``region`` the VM's location (``location``,
    the provider's, when the record lacks one), ``az`` its first zone or
    ``""`` -- Azure VMs are created without zones, and upstream writes the
    empty string then."""
    props = vm.get("properties") or {}
    zones = vm.get("zones") or []
    return Instance(
        external_id=vm.get("name"),
        state=STATES.get(props.get("provisioningState"),
                         InstanceState.UNKNOWN),
        az=str(zones[0]) if zones else "",
        region=vm.get("location") or location, cloud="Azure",
        metadata=dict(vm.get("tags") or {}), resources=resources)


def launched_instance(vm: Mapping, nic: Mapping | None,
                      pips: Mapping[int, Mapping],
                      resources: Mapping[str, float] | None,
                      location: str) -> Instance:
    """The Instance of a VM that just finished provisioning, with its
    addresses as upstream reads them: private ones from the NIC's
    ipConfigurations, public ones from the addresses they reference;
    ``interface_ip`` is the first of public IPv4, public IPv6, private
    IPv4, private IPv6 (the launcher takes the private address instead with
    ``use-internal-ip``).  A node has no private-IPv6 field."""
    private4 = private_address(nic, 4)
    private6 = private_address(nic, 6)
    public4 = public_address(pips.get(4))
    public6 = public_address(pips.get(6))
    return replace(vm_instance(vm, resources, location),
                   state=InstanceState.RUNNING,
                   interface_ip=public4 or public6 or private4 or private6,
                   public_ipv4=public4, private_ipv4=private4,
                   public_ipv6=public6)


class AzureAdapter(CloudAdapter):
    leak_types = ("instances",) + leaks.LEAK_KINDS + (leaks.IMAGES,)

    def __init__(self, provider, log: logging.Logger | None = None,
                 clients: Clients | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(provider, log)
        settings = provider.settings
        self.clock = clock
        self.location = settings["location"].replace(" ", "").lower()
        self.resource_group = settings["resource-group"]
        self.group_location = settings.get("resource-group-location") \
            or self.location
        self.clients = clients or Clients(
            load_auth(settings["auth-path"]),
            pool_size=create_pool_size(self._rate(provider), CALL_LATENCY)
            + READ_THREADS + 4)
        self.subscription = self.clients.auth.subscription_id
        self.subnet_id = params.subnet_id(settings, self.subscription)
        if not self.subnet_id:
            self.clients.close()
            raise errors.ConfigurationError(
                f"Azure provider {provider.name} has neither subnet-id "
                "nor network")
        rate = self._rate(provider)
        self.api = AzureApi(provider.name, rate, clock=clock,
                            access=self.access)
        self.create_pool = CreatePool(provider.name,
                                      create_pool_size(rate, CALL_LATENCY))
        self.writes = PriorityWrites(self.create_pool)
        self.read_pool = ThreadPoolExecutor(
            max_workers=READ_THREADS,
            thread_name_prefix=f"{provider.name}-read")
        interval = listing_interval(rate)
        self.listings = {kind: Listing(f"{provider.name}-{kind}",
                                       self._lister(kind), self.read_pool,
                                       interval, clock)
                         for kind in OPERATIONS}
        self.sizes = SizeCatalog(self.location, self._skus, clock=clock)
        self.usages = UsageCache(self._usages, clock=clock)
        self.images = ImageResolver(self._images, self._gallery_versions,
                                    self._image_id, clock=clock)
        self._group_lock = threading.Lock()
        self._group_ready = False
        #: the latest attempt of each node: a new one abandons the last
        self.pending = PendingCreates(provider.launch_timeout or 3600)

    @staticmethod
    def _rate(provider) -> float:
        return float(provider.rate if provider.rate is not None else 1.0)

    # -- lifecycle -----------------------------------------------------------
    def stop(self) -> None:
        self.writes.shutdown()
        self.read_pool.shutdown(wait=False, cancel_futures=True)
        self.clients.close()

    # -- machines ------------------------------------------------------------
    def create_machine(self, spec: LaunchSpec) -> StateMachine:
        return self.pending.attempt(AzureCreate(self, spec))

    def delete_machine(self, external_id, immediate: bool = False
                       ) -> StateMachine:
        return AzureDelete(self, external_id, immediate)

    #: PUTs of later launch stages first (see ``writes.py``)
    PUT_PRIORITY = {"vms": URGENT, "nics": NORMAL, "pips": EARLY}

    def submit_put(self, kind: str, name: str, body: Mapping) -> Future:
        return self.writes.submit(self.PUT_PRIORITY[kind], self.put, kind,
                                  name, body)

    def submit_delete(self, kind: str, name: str) -> Future:
        return self.writes.submit(URGENT, self.delete, kind, name)

    def submit_read(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.read_pool.submit(fn, *args)

    # -- calls (run on the pools) --------------------------------------------
    def _ops(self, kind: str):
        client, attr = OPERATIONS[kind]
        return getattr(getattr(self.clients, client), attr)

    def resource_id(self, kind: str, name: str) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/"
                f"{self.resource_group}/providers/{ARM_TYPES[kind]}/{name}")

    def prepare(self, spec: LaunchSpec) -> dict:
        """Resource group present, image reference resolved."""
        self._ensure_group()
        return self.images.resolve(spec.label, spec.image_external_id)

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        groups = self.clients.resource.resource_groups
        with self._group_lock:
            if self._group_ready:
                return
            if not self.api.read("HEAD resourceGroup", lambda: (
                    groups.check_existence(self.resource_group))):
                self.log.info("Creating resource group %s in %s",
                              self.resource_group, self.group_location)
                self.api.write("PUT resourceGroup", lambda: (
                    groups.create_or_update(
                        self.resource_group,
                        {"location": self.group_location})), kind=CREATE)
            self._group_ready = True

    def put(self, kind: str, name: str, body: Mapping) -> dict:
        """PUT one resource; the answer as REST dict (not yet done)."""
        ops = self._ops(kind)
        def call() -> dict:
            return ops.begin_create_or_update(
                self.resource_group, name, body,
                polling=False).result().as_dict()
        return self.api.write(f"PUT {kind}", call, kind=CREATE)

    def delete(self, kind: str, name: str) -> None:
        """DELETE one resource (accepted, not yet done); NotFoundError
        when its resource group is gone."""
        ops = self._ops(kind)
        self.api.write(f"DELETE {kind}", lambda: ops.begin_delete(
            self.resource_group, name, polling=False).result())

    def delete_later(self, kind: str, name: str) -> None:
        """Fire-and-forget DELETE (orphans of abandoned attempts)."""
        def run() -> None:
            try:
                self.delete(kind, name)
            except errors.NotFoundError:
                pass
            except Exception as e:
                log_failure(self.log, e, "Could not delete %s %s: %s", kind,
                            name, e)
        try:
            self.writes.submit(URGENT, run)
        except RuntimeError:   # provider stopping: leak cleanup takes it
            pass

    def failure_reason(self, vm: str) -> str:
        record = self.api.read("GET vm instanceView", lambda: (
            self.clients.compute.virtual_machines.get(
                self.resource_group, vm, expand="instanceView").as_dict()))
        statuses = ((record.get("properties") or {}).get("instanceView")
                    or {}).get("statuses") or []
        for status in statuses:
            if status.get("level") == "Error":
                code = str(status.get("code", "")).rsplit("/", 1)[-1]
                return f"{code}: {status.get('message', '')}".strip()
        return "no error status reported"

    def _lister(self, kind: str) -> Callable[[], list[dict]]:
        def fetch() -> list[dict]:
            ops = self._ops(kind)
            method = ops.list_by_resource_group if kind == "disks" \
                else ops.list
            try:
                return self.api.read(f"LIST {kind}", lambda: [
                    item.as_dict() for item in method(self.resource_group)])
            except errors.NotFoundError:
                return []          # no resource group yet: nothing exists
        return fetch

    def _skus(self) -> list[dict]:
        return self.api.read("LIST skus", lambda: [
            s.as_dict() for s in self.clients.compute.resource_skus.list(
                filter=f"location eq '{self.location}'")])

    def _usages(self) -> list[dict]:
        return self.api.read("LIST usages", lambda: [
            u.as_dict() for u in self.clients.compute.usage.list(
                self.location)])

    def _images(self) -> list[dict]:
        images = self.clients.compute.images
        return self.api.read("LIST images", lambda: [
            i.as_dict() for i in images.list_by_resource_group(
                self.resource_group)])

    def _gallery_versions(self, kind: str, gallery: str, name: str
                          ) -> list[dict]:
        compute = self.clients.compute
        ops = compute.shared_gallery_image_versions \
            if kind == "shared-gallery-image" \
            else compute.community_gallery_image_versions
        return self.api.read(f"LIST {kind} versions", lambda: [
            v.as_dict() for v in ops.list(self.location, gallery, name)])

    def _image_id(self, value: str) -> str:
        """A diskimage upload's image: a resource id or an image name."""
        if value.lower().startswith("/subscriptions/"):
            return value
        if "/" not in value:
            return self.resource_id("images", value)
        raise errors.ConfigurationError(
            f"diskimage upload id {value!r} is not an Azure image",
            stat_key="error.config")

    # -- instances -----------------------------------------------------------
    def _resources(self, size: str | None) -> dict[str, float]:
        return resources_of(self.sizes.cached(size))

    def instance_for(self, vm: Mapping, nic: Mapping | None,
                     pips: Mapping[int, Mapping]) -> Instance:
        """The Instance of a VM that just finished provisioning."""
        return launched_instance(vm, nic, pips, self._vm_resources(vm),
                                 self.location)

    def _instance(self, vm: Mapping) -> Instance:
        instance = vm_instance(vm, self._vm_resources(vm), self.location)
        if instance.state is InstanceState.UNKNOWN:
            self.log.debug("VM %s has unknown state %r", vm.get("name"),
                           (vm.get("properties") or {}).get(
                               "provisioningState"))
        return instance

    def _vm_resources(self, vm: Mapping) -> dict[str, float]:
        return self._resources(((vm.get("properties") or {}).get(
            "hardwareProfile") or {}).get("vmSize"))

    def list_instances(self) -> Iterable[Instance]:
        try:
            self.sizes.load()       # instance costs need the catalog
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not load VM sizes: %s", e)
        records = self.listings["vms"].get(LIST_MAX_AGE)
        return [self._instance(vm) for vm in records.values()]

    def forget_listings(self) -> None:
        """The next listing of every type asks the cloud (tests, tools)."""
        for listing in self.listings.values():
            listing.forget()

    def list_resources(self) -> Iterable[Resource]:
        out: list[Resource] = []
        for kind in leaks.LEAK_KINDS:
            records = self.listings[kind].get(LIST_MAX_AGE)
            out += leaks.candidates(kind, records.values(),
                                    self.provider.name)
        try:
            images = self._images()
        except errors.NotFoundError:
            images = []            # no resource group yet: nothing exists
        return out + leaks.image_candidates(images, self.provider.name)

    def delete_resource(self, resource: Resource) -> None:
        """DELETE a leaked NIC, public IP, disk or image (accepted, not
        awaited).

        A refusal is logged, not raised: the resource is listed again on
        the next pass, and one failure must not end the pass for the
        provider's other leaks.
        """
        if resource.type not in leaks.LEAK_KINDS + (leaks.IMAGES,):
            raise errors.ConfigurationError(
                f"Azure does not clean up {resource.type}")
        if resource.provider_name != self.provider.name:
            raise errors.ConfigurationError(
                f"refusing to delete {resource.type} {resource.id}: not "
                f"tagged with provider {self.provider.name}")
        try:
            if resource.type == leaks.IMAGES:
                images = self.clients.compute.images
                self.api.write("DELETE images", lambda: images.begin_delete(
                    self.resource_group, resource.id, polling=False).result())
            else:
                self.delete(resource.type, resource.id)
        except errors.NotFoundError:
            pass
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not delete leaked %s %s: %s",
                        resource.type, resource.id, e)

    # -- quota ---------------------------------------------------------------
    def _labels(self):
        for pool in self.provider.pools.values():
            yield from pool.labels.values()

    @staticmethod
    def _vm_size(label) -> str | None:
        return (label.settings.get("hardware-profile") or {}).get("vm-size")

    def quota_limits(self) -> Quota:
        try:
            families = {info.family for info in
                        (self.sizes.size(self._vm_size(label) or "")
                         for label in self._labels())
                        if info is not None and info.family}
            return self.usages.limits(families)
        except errors.DriverError as e:
            log_failure(self.log, e, "No quota limits from Azure: %s", e)
            return Quota()

    def offering(self, pool, label) -> str | None:
        """``<location>/<VM size>``: Azure allocates a size in a region."""
        profile = label.settings.get("hardware-profile") or {}
        size = profile.get("vm-size")
        if not size:
            return super().offering(pool, label)
        return f"{self.provider.settings.get('location')}/{size}"

    def label_quota(self, label) -> Quota:
        try:
            info = self.sizes.size(self._vm_size(label) or "")
        except errors.DriverError as e:
            log_failure(self.log, e, "No quota cost for label %s: %s",
                        label.name, e)
            return Quota(instances=1)
        return Quota(resources_of(info))

    def label_usable(self, label) -> bool:
        if label.image is None:
            return False      # names no image: can never launch (§6)
        size = self._vm_size(label)
        if not size:
            return False
        try:
            info = self.sizes.size(size)
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not check VM size of %s: %s",
                        label.name, e)
            return True
        return info is not None and not info.restricted

    def image_available(self, label) -> bool:
        return self.images.available(label)

    # -- measurements ---------------------------------------------------------
    def stats(self) -> dict:
        """Counters of every mechanism, for benchmarks and debugging."""
        return {
            "api": self.api.stats(),
            "create_pool": {"workers": self.create_pool.workers,
                            "busy": self.create_pool.busy,
                            "queued": self.writes.queued},
            "listings": {k: {"refreshes": v.refreshes, "errors": v.errors}
                         for k, v in self.listings.items()},
        }
