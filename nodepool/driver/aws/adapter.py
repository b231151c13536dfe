"""AwsAdapter: the ``driver: aws`` provider, on boto3.

Threads (what runs where, per provider):

- the provider loop steps ``AwsCreate``/``AwsDelete`` machines; a step
  never makes a cloud call;
- ``<provider>-create-N`` (CreatePool, sized from ``rate`` for 1.5 s
  calls) runs RunInstances, fed directly or through the
  ``<provider>-create-batcher`` (``batch-creates``, on by default: the
  framework ``Batcher`` keyed by ``params.batch_key``, limiter first, call
  sizes learned by ``callsize.AdaptiveSize``);
  fleet labels use CreateFleet (``fleet``), dedicated-host labels
  AllocateHosts + RunInstances (``dedicated``), one node per call;
- ``<provider>-delete-batcher`` (the same ``Batcher``, ``delete.DELETES``)
  sends TerminateInstances for up to 50 ids;
  ``<provider>-delete-now_N`` sends retry/leak deletes alone at once and
  releases dedicated hosts (waiting there, polling every 2 s, for a
  host's instance to be gone);
- ``<provider>-describe`` polls DescribeInstances for ids in flight;
- ``<provider>-tagger`` adds per-node tags to batch-created instances;
- pool workers and the cleanup worker call the read-only methods
  (quota, images, ``list_instances``), which cache their answers;
- the cleanup worker lists and deletes leaked resources (``uploads``:
  AMIs, snapshots, S3 objects, import-task tags; ``fleet``: unused launch
  templates) on its own thread;
  ``<provider>-list_0`` refreshes the instance listing in the background
  and warms the caches at start;
- the deleted-node worker calls ``find_instances`` on its own thread.

Shared state: ``_lock`` guards ``_created`` (instances created in the last
``RECENT_SECONDS``: written by ``AwsCreate`` on the loop thread, read by
``AwsDelete``); the pending creates, the listing, quota and image caches,
the watcher, the tagger and the batchers keep their own locks (their
modules).  The loop thread never waits for the cloud: every call it needs is
a ``Future`` from one of the pools above.

Every call goes through ``AwsApi``: mutating ones at ``rate`` per second,
read-only ones at ten times that, throttling reported to the limiter
(AIMD), errors classified into framework exceptions.  The endpoint,
credentials and profile come from boto3's usual configuration
(``AWS_ENDPOINT_URL`` included), so the same code runs against AWS and a
local one.

Failure story: see each module; in short, throttling and 5xx are retried
in ``AwsApi`` alone (``LimitedApi``) and at worst fail one launch attempt,
never a request by themselves, capacity and quota
errors abort the node (the request is retried), configuration errors fail
it, and nothing is ever created without the tags leak cleanup needs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Mapping

from nodepool.driver import errors
from nodepool.driver.adapter import CloudAdapter
from nodepool.driver.aws import params as launch_params
from nodepool.driver.aws.api import AwsApi
from nodepool.driver.aws.create import AwsCreate, InstanceCreator
from nodepool.driver.aws.dedicated import (
    DedicatedHostCreator, split_external_id)
from nodepool.driver.aws.delete import DELETES, AwsDelete, Terminator
from nodepool.driver.aws.fleet import FleetCreator
from nodepool.driver.aws.describe import (STATE_MAP, instance_state, tags_of,
                                         to_instance)
from nodepool.driver.aws.images import ImageResolver
from nodepool.driver.aws.quota import (
    GIB_PER_TIB, QuotaCache, instance_quota_code, iops_quota_code,
    volume_quota_code)
from nodepool.driver.aws.tagger import Tagger
from nodepool.driver.aws.uploads import (
    UPLOAD_TYPES, UploadResources, s3_client)
from nodepool.driver.aws.watcher import InstanceWatcher
from nodepool.driver.backoff import log_failure
from nodepool.driver.batcher import NO_RESEND, Batcher, BatchOptions
from nodepool.driver.callsize import AdaptiveSize
from nodepool.driver.createpool import CreatePool, create_pool_size
from nodepool.driver.instance import Instance, InstanceState, Resource
from nodepool.driver.machines import PendingCreates
from nodepool.driver.quota import Quota
from nodepool.driver.statemachine import LaunchSpec, StateMachine
from nodepool.driver.ttlcache import TtlValue

__all__ = ["AwsAdapter"]

#: RunInstances latency the create pool is sized for (EC2: ~1-1.5 s)
CREATE_LATENCY = 1.5
#: launches of one specification in one RunInstances call at most
MAX_LAUNCHES = 50
#: an instance this young may still be unknown to EC2's other calls
RECENT_SECONDS = 60.0
#: list_instances answers from its cache while younger than this
#: (upstream's CACHE_TTL: a listing of every instance of the account is
#: the costliest read, and during a burst it is mostly our own) ...
LIST_CACHE_SECONDS = 10.0
#: ... find_instances (crash recovery) from a listing at most this old
FIND_MAX_AGE = 2.0
#: ... and up to this old while a refresh runs in the background
LIST_STALE_SECONDS = 60.0
#: the listing's filter: every instance state but terminated
LIVE_STATES = [{"Name": "instance-state-name",
                "Values": [name for name, state in STATE_MAP.items()
                           if state is not InstanceState.DELETED]}]
#: the cost of a node whose type is unknown (or on a dedicated host)
_ONE_INSTANCE = {"cores": 0, "instances": 1, "ram": 0}


def _session(profile: str | None):
    import boto3
    return boto3.Session(profile_name=profile) if profile else \
        boto3.Session()


class AwsAdapter(CloudAdapter):
    leak_types = ("instances", "volumes", "hosts") + UPLOAD_TYPES

    def __init__(self, provider, log: logging.Logger | None = None,
                 session=None):
        super().__init__(provider, log)
        settings = provider.settings
        self.region = settings["region-name"]
        rate = float(provider.rate if provider.rate is not None else 2.0)
        workers = create_pool_size(rate, CREATE_LATENCY)
        session = session or _session(settings.get("profile-name"))
        self.api = AwsApi(provider.name, session, self.region, rate,
                          max_connections=workers + 10, access=self.access)
        self.uploads = UploadResources(
            self.api, provider.name,
            (settings.get("object-storage") or {}).get("bucket-name"),
            lambda: s3_client(session, self.region))
        self.batch_creates = bool(settings.get("batch-creates", True))
        self.create_pool = CreatePool(provider.name, workers)
        self.creator = InstanceCreator(self)
        self.fleet = FleetCreator(self)
        self.dedicated = DedicatedHostCreator(self)
        self.create_sizing = AdaptiveSize(
            f"{provider.name}-create", MAX_LAUNCHES,
            on_signal=self._batch_signal, spread_over=self._create_slots)
        # Launches of one specification (``params.batch_key``) share a
        # RunInstances call: tens of ms of quiet or 0.5 s close a group,
        # the call takes its limiter slot before its launches, runs on the
        # create pool, learns its size from partial answers, and a refused
        # specification fails what is queued of it.  Nothing is resent: a
        # partial answer is no error of the launches left out.
        self.create_batcher = Batcher(
            f"{provider.name}-create", self._run_batch, BatchOptions(
                max_items=MAX_LAUNCHES, idle_timeout=0.05, max_wait=0.5,
                resend=NO_RESEND, limiter=self.api.limiter,
                workers=self.create_pool, sizing=self.create_sizing,
                refusal=self._batch_refusal,
                refused_by=(errors.QuotaError,), recent=200))
        self.terminator = Terminator(self)
        self.delete_batcher = Batcher(
            f"{provider.name}-delete", self.terminator.terminate, DELETES)
        self.batchers = (self.create_batcher, self.delete_batcher)
        self.delete_pool = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix=f"{provider.name}-delete-now")
        self.watcher = InstanceWatcher(provider.name, self.describe,
                                       self.instance_states)
        self.tagger = Tagger(provider.name, self._create_tags)
        self.quota = QuotaCache(self._describe_types, self._get_quota)
        self.images = ImageResolver(self._describe_images)
        self._lock = threading.Lock()
        #: the latest attempt of each node: a new one abandons the last
        self.pending = PendingCreates(provider.launch_timeout or 3600)
        self._created: dict[str, float] = {}
        self.list_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{provider.name}-list")
        self.listing: TtlValue[list[Instance]] = TtlValue(
            "instances", self._list_now, LIST_CACHE_SECONDS,
            max_stale=LIST_STALE_SECONDS, refresh_in=self.list_pool.submit)

    def _create_slots(self) -> float:
        """RunInstances calls the limiter starts while one is in flight
        (its rate now, our share of it included, times the calls' recent
        duration; ``CREATE_LATENCY`` until one has returned): how far the
        create sizing may spread a new specification's launches."""
        rate = self.api.limiter.effective_rate
        if rate <= 0:
            return math.inf
        seconds = self.create_batcher.stats.call_seconds
        return rate * (CREATE_LATENCY if seconds is None else seconds)

    def offering(self, pool, label) -> str | None:
        """``<subnet or zone or region>/<instance type>[/spot]``: EC2's
        capacity is per zone, type and market.  A fleet label picks among
        several types and zones itself: its pool and label name it."""
        settings = label.settings
        if settings.get("fleet") or not settings.get("instance-type"):
            return super().offering(pool, label)
        place = (pool.settings.get("subnet-id")
                 or pool.settings.get("availability-zone") or self.region)
        market = "/spot" if settings.get("use-spot") else ""
        return f"{place}/{settings['instance-type']}{market}"

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        self.delete_batcher.start()
        if self.batch_creates:
            self.create_batcher.start()
        self.watcher.start()
        self.tagger.start()
        self.list_pool.submit(self._warm_up)

    def _warm_up(self) -> None:
        """Fill the image, instance-type and quota caches before the first
        request needs them (each is a cloud call on first use)."""
        try:
            labels = list(self._labels())
            self.quota.types({t for label in labels
                              for t in self._label_types(label)})
            for label in labels:
                if not label.diskimage:
                    self.images.available(label)
            self.quota_limits()
        except Exception as e:
            log_failure(self.log, e, "Warm-up of provider caches failed: %s",
                        e)

    def stop(self) -> None:
        self.create_batcher.stop(flush=False)
        self.create_pool.shutdown(wait=False)
        self.delete_batcher.stop()
        self.delete_pool.shutdown(wait=False, cancel_futures=False)
        self.list_pool.shutdown(wait=False)
        self.watcher.stop()
        self.tagger.stop()

    # -- create ---------------------------------------------------------------
    def create_machine(self, spec: LaunchSpec) -> StateMachine:
        return self.pending.attempt(AwsCreate(self, spec))

    def submit_create(self, machine: AwsCreate) -> Future:
        """Start the RunInstances for one machine; never blocks."""
        spec = machine.spec
        if spec.label.settings.get("fleet"):
            return self.create_pool.submit(self.fleet.send_one, spec)
        if spec.label.settings.get("dedicated-host"):
            return self.create_pool.submit(self.dedicated.send_one, spec)
        if self.batch_creates:
            return self.create_batcher.add(spec,
                                           launch_params.batch_key(spec))
        return self.create_pool.submit(self.creator.send_one, spec)

    def _run_batch(self, specs: list[LaunchSpec]) -> list:
        """The create batcher's executor: its limiter slot is taken."""
        return self.creator.send(specs, admitted=True)

    def _batch_config(self, key: tuple):
        """The pool and label of a create batcher key (``params.batch_key``:
        pool and label names first), or (None, None)."""
        pool = self.provider.pools.get(key[0])
        label = pool.labels.get(key[1]) if pool is not None else None
        return (pool, label) if label is not None else (None, None)

    def _batch_signal(self, key: tuple, short: bool, reason: str) -> None:
        """The create batcher's capacity signal, for the launcher."""
        pool, label = self._batch_config(key)
        if label is not None and self.capacity is not None:
            self.capacity.capacity_signal(pool, label, short,
                                          f"EC2: {reason}")

    def _batch_refusal(self, key: tuple) -> errors.CapacityError | None:
        """Why the batcher may not send a call for ``key`` now (its
        offering is unavailable: the error its queued launches fail
        with), or None."""
        pool, label = self._batch_config(key)
        if label is None or self.capacity is None:
            return None
        record = self.capacity.offering_unavailable(pool, label)
        return None if record is None else \
            errors.CapacityError(record.describe())

    def created(self, instance_id: str) -> None:
        """Remember a new instance for ``created_recently``."""
        now = time.monotonic()
        with self._lock:
            self._created[instance_id] = now
            if len(self._created) > 1000:
                limit = now - RECENT_SECONDS
                self._created = {i: t for i, t in self._created.items()
                                 if t >= limit}

    def created_recently(self, instance_id: str) -> bool:
        """True for an instance we created under RECENT_SECONDS ago."""
        with self._lock:
            created = self._created.get(instance_id)
        return created is not None and \
            time.monotonic() - created < RECENT_SECONDS

    def instance_from(self, record: Mapping) -> Instance:
        """A listed instance with its quota cost (types cached by
        label_quota); one on a dedicated host costs one instance, as
        upstream counts it."""
        spot = record.get("InstanceLifecycle") == "spot"
        if (record.get("Placement") or {}).get("HostId"):
            resources = dict(_ONE_INSTANCE)
        else:
            resources = self._resources(record.get("InstanceType"), spot,
                                        fetch=False)
        return to_instance(record, self.region, resources)

    def node_instance(self, record: Mapping, label, external_id
                      ) -> Instance:
        """The Instance a create machine hands over for its node: what
        upstream Nodepool's launcher writes for the same instance --
        ``external_id`` in its object form, ``resources`` of the label
        for the type that runs, ``node_properties`` from the label."""
        settings = label.settings
        return dataclasses.replace(
            to_instance(record, self.region),
            external_id=external_id,
            resources=self.node_resources(label, record.get("InstanceType"),
                                          fetch=False),
            node_properties={"fleet": bool(settings.get("fleet")),
                             "spot": bool(settings.get("use-spot"))})

    # -- delete ---------------------------------------------------------------
    def delete_machine(self, external_id, immediate: bool = False
                       ) -> StateMachine:
        return AwsDelete(self, external_id, immediate)

    def delete_now(self, external_id) -> Future:
        """Terminate one instance (and release its host) at once, off the
        caller's thread."""
        instance_id, host_id = split_external_id(external_id)
        if host_id is None:
            return self.delete_pool.submit(self.delete_batcher.run_now,
                                           instance_id)
        return self.delete_pool.submit(self._delete_with_host, instance_id,
                                       host_id)

    def release_host(self, host_id: str) -> Future:
        return self.delete_pool.submit(self.dedicated.release, host_id)

    def _delete_with_host(self, instance_id: str | None, host_id: str,
                          timeout: float = 300.0) -> None:
        # On a delete-now worker: EC2 releases a host only once its
        # instance is gone, so wait for that here, never on the loop.
        if instance_id is not None:
            try:
                self.delete_batcher.run_now(instance_id)
            except errors.NotFoundError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                records = self.describe([{"Name": "instance-id",
                                          "Values": [instance_id]}])
                if all(instance_state(r) is InstanceState.DELETED
                       for r in records):
                    break
                time.sleep(2.0)
        self.dedicated.release_quietly(host_id)

    # -- listing --------------------------------------------------------------
    def describe(self, filters: list[dict]) -> list[dict]:
        """Instance records matching EC2 ``filters`` (read-limited)."""
        reservations = self.api.read_pages("describe_instances",
                                           "Reservations", Filters=filters)
        return [i for r in reservations for i in r.get("Instances", [])]

    def instance_states(self, ids: list[str]) -> dict[str, str]:
        """State names of ``ids``; NotFoundError if one is unknown."""
        answer = self.api.read("describe_instance_status", InstanceIds=ids,
                               IncludeAllInstances=True)
        return {s["InstanceId"]: s["InstanceState"]["Name"]
                for s in answer.get("InstanceStatuses") or []}

    def list_instances(self) -> Iterable[Instance]:
        """Every instance of the region (not terminated), ours or not.

        Answers from the listing cache (``nodepool.driver.ttlcache``):
        fresh under LIST_CACHE_SECONDS; up to LIST_STALE_SECONDS old it is
        returned at once while one refresh runs on the list thread (a full
        DescribeInstances of a big account takes seconds, and pool workers
        ask on every quota check); older or absent, the caller waits for a
        refresh.  Leak cleanup tolerates the staleness: it deletes only
        what two passes agree on.
        """
        return list(self.listing.get())

    def find_instances(self, node_id: str) -> list[Instance]:
        """Instances of ``node_id`` (batch-created ones too, see
        ``describe.tags_of``) from a listing at most FIND_MAX_AGE old:
        the cache could miss an instance of a crashed launch."""
        instances = self.listing.get(max_age=FIND_MAX_AGE)
        return [i for i in instances if i.node_id == node_id]

    def _list_now(self) -> list[Instance]:
        # Terminated instances stay listed for about an hour: asking EC2
        # to leave them out saves parsing an hour of launches per listing.
        records = [r for r in self.describe(LIVE_STATES)
                   if instance_state(r) is not InstanceState.DELETED]
        self.quota.types({r.get("InstanceType") for r in records
                          if r.get("InstanceType")})
        return [self.instance_from(r) for r in records]

    def forget_listing(self) -> None:
        """The next ``list_instances`` asks the cloud (tests, tools)."""
        self.listing.invalidate()

    def list_resources(self) -> Iterable[Resource]:
        """Unattached volumes carrying our provider tag (attached ones go
        with their instance: DeleteOnTermination), dedicated hosts, and
        image uploads (``uploads.py``: AMIs, snapshots, S3 objects; their
        import-task tags copied on first).  The first call also deletes
        the fleet launch templates no label uses any more (``fleet.py``)."""
        self.fleet.clean_templates_once()
        volumes = self.api.read_pages("describe_volumes", "Volumes", Filters=[
            {"Name": "tag:nodepool_provider_name",
             "Values": [self.provider.name]},
            {"Name": "status", "Values": ["available"]}])
        out = [Resource(type="volumes", id=v["VolumeId"],
                        metadata=tags_of(v)) for v in volumes]
        if any(label.settings.get("dedicated-host")
               for label in self._labels()):
            out += self._list_hosts()
        return out + self.uploads.list()

    def _list_hosts(self) -> list[Resource]:
        # Tags are matched here, not in a filter: not every endpoint
        # filters hosts by tag, and an account has few hosts.
        hosts = self.api.read_pages("describe_hosts", "Hosts")
        out = []
        for host in hosts:
            tags = tags_of(host)
            released = host.get("State", "").startswith("released")
            if (tags.get("nodepool_provider_name") == self.provider.name
                    and not released):
                out.append(Resource(type="hosts", id=host["HostId"],
                                    metadata=tags))
        return out

    def delete_resource(self, resource: Resource) -> None:
        try:
            if resource.type == "volumes":
                self.api.mutate("delete_volume", VolumeId=resource.id)
            elif resource.type == "hosts":
                self.dedicated.release(resource.id)
            elif resource.type in UPLOAD_TYPES:
                self.uploads.delete(resource)
            else:
                raise errors.ConfigurationError(
                    f"AWS does not clean up {resource.type}")
        except errors.NotFoundError:
            pass

    # -- quota ----------------------------------------------------------------
    def _labels(self):
        for pool in self.provider.pools.values():
            yield from pool.labels.values()

    @staticmethod
    def _label_types(label) -> list[str]:
        settings = label.settings
        if settings.get("fleet"):
            return list(settings["fleet"].get("instance-types") or [])
        return [settings["instance-type"]] if settings.get(
            "instance-type") else []

    def quota_limits(self) -> Quota:
        codes: dict[tuple[str, str], float] = {}
        for label in self._labels():
            settings = label.settings
            if not settings.get("dedicated-host"):
                for itype in self._label_types(label):
                    code = instance_quota_code(itype,
                                               settings.get("use-spot"))
                    if code:
                        codes[("ec2", code)] = 1
            volume_type = settings.get("volume-type")
            vcode = volume_quota_code(volume_type)
            if vcode and settings.get("volume-size") is not None:
                codes[("ebs", vcode)] = GIB_PER_TIB
            icode = iops_quota_code(volume_type)
            if icode and settings.get("iops") is not None:
                codes[("ebs", icode)] = 1
        values = {}
        for (service, code), scale in codes.items():
            value = self.quota.quota(service, code) * scale
            if math.isfinite(value):
                values[code] = value
        return Quota(values)

    def label_quota(self, label) -> Quota:
        """One node's cost; for a fleet the largest of its types."""
        types = self._label_types(label)
        if not types or label.settings.get("dedicated-host"):
            return Quota(self.node_resources(label, None))
        try:
            values = max((self.node_resources(label, t) for t in types),
                         key=lambda v: (v.get("cores", 0), v.get("ram", 0)))
        except errors.DriverError as e:
            log_failure(self.log, e, "No quota cost for label %s: %s",
                        label.name, e)
            return Quota(_ONE_INSTANCE)
        return Quota(values)

    def node_resources(self, label, itype: str | None,
                       fetch: bool = True) -> dict:
        """A node's ``resources`` as upstream Nodepool writes them.

        ``cores`` (physical), ``instances``, ``ram`` and the vCPUs under
        the type's quota code; a dedicated-host node counts one instance
        and no cores or ram (its instance is not charged against the
        instance quotas); a label with ``volume-type`` adds its
        ``volume-size`` and ``iops`` under the EBS codes.
        """
        settings = label.settings
        if settings.get("dedicated-host"):
            values = dict(_ONE_INSTANCE)
        else:
            values = self._resources(itype, bool(settings.get("use-spot")),
                                     fetch=fetch)
        volume_type = settings.get("volume-type")
        vcode = volume_quota_code(volume_type)
        if vcode and settings.get("volume-size") is not None:
            values[vcode] = int(settings["volume-size"])
        icode = iops_quota_code(volume_type)
        if icode and settings.get("iops") is not None:
            values[icode] = int(settings["iops"])
        return values

    def _resources(self, itype: str | None, spot: bool,
                   fetch: bool = True) -> dict:
        if not itype:
            return dict(_ONE_INSTANCE)
        if fetch:
            info = self.quota.type_info(itype)
        else:
            info = self.quota.cached_type(itype)
            if info is None:
                return dict(_ONE_INSTANCE)
        values = {"cores": info.cores, "instances": 1, "ram": info.memory}
        code = instance_quota_code(itype, spot)
        if code:
            values[code] = info.vcpus
        return values

    # -- images and labels -------------------------------------------------
    def image_available(self, label) -> bool:
        return self.images.available(label)

    def label_usable(self, label) -> bool:
        types = self._label_types(label)
        if label.image is None or not types:
            # A label without type or image can never launch (config.md).
            return False
        try:
            for itype in types:
                self.quota.type_info(itype)
        except errors.ConfigurationError:
            return False
        except errors.DriverError as e:
            log_failure(self.log, e, "Could not check instance type of %s: "
                        "%s", label.name, e)
        return True

    # -- calls handed to the helpers ------------------------------------------
    def _create_tags(self, instance_id: str, tags: Mapping[str, str]) -> None:
        # Nodes do not wait for these: creates and deletes go first.
        self.api.mutate("create_tags", background=True,
                        Resources=[instance_id],
                        Tags=launch_params.tag_list(tags))

    def _describe_types(self, names: list[str]) -> list[dict]:
        return self.api.read_pages("describe_instance_types",
                                   "InstanceTypes", InstanceTypes=names)

    def _get_quota(self, service: str, code: str) -> float:
        answer = self.api.read("get_service_quota", self.api.quotas,
                               ServiceCode=service, QuotaCode=code)
        return answer["Quota"]["Value"]

    def _describe_images(self, **params) -> list[dict]:
        return self.api.read_pages("describe_images", "Images", **params)

    # -- measurements ---------------------------------------------------------
    def stats(self) -> dict:
        """Counters of every mechanism, for benchmarks and debugging."""
        return {
            "api": self.api.stats(),
            "create_pool": {"workers": self.create_pool.workers,
                            "busy": self.create_pool.busy,
                            "queued": self.create_pool.queued},
            "create_batcher": self.create_batcher.summary(),
            "partial_creates": self.creator.partial,
            "delete_batcher": self.delete_batcher.summary(),
            "watcher": self.watcher.stats(),
            "tagger": self.tagger.stats(),
            "service_quota_calls": self.quota.quota_calls,
        }
