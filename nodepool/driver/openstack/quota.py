"""Cloud quota: Nova (and Cinder) absolute limits, and what a label costs.

``QuotaLimits.get()`` answers the pool workers' ``quota_limits()`` from
the driver's one TTL cache (``nodepool.driver.ttlcache``) refreshed every
``ttl`` seconds (60): the limits themselves rarely
change, and usage is counted by the launcher from ZooKeeper plus the
instances of others (behaviour 34), not from Nova's ``*Used`` counters.
Nova's ``maxTotalInstances``/``maxTotalCores``/``maxTotalRAMSize`` become
``instances``/``cores``/``ram``; when some label boots from volume,
Cinder's ``maxTotalVolumes``/``maxTotalVolumeGigabytes`` become
``volumes``/``volume-gb``.  -1 (OpenStack's "unlimited") is left out, which
the framework reads as unlimited.

``label_cost`` is one instance plus its flavor's vCPUs and RAM, and for
boot-from-volume one volume of ``volume-size`` GB.

Failure story: a failed refresh keeps the previous limits (logged) and is
tried again after ``RETRY_DELAY`` (5 s); with none yet, the limits are
unknown and treated as unlimited, so a cloud hiccup never stops launches,
and the cloud's own refusal (QuotaError) still aborts nodes that do not
fit.  ``invalidate()`` after such a refusal makes the next question ask
Nova again.

Threads: any (the cache locks; the fetch runs on the asking pool worker).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

from nodepool.driver import errors
from nodepool.driver.quota import Quota
from nodepool.driver.ttlcache import TtlValue

__all__ = ["QuotaLimits", "compute_limits", "volume_limits", "label_cost"]


#: after a failed read of the limits, ask again this soon
RETRY_DELAY = 5.0

COMPUTE_KEYS = {"maxTotalInstances": "instances", "maxTotalCores": "cores",
                "maxTotalRAMSize": "ram"}
VOLUME_KEYS = {"maxTotalVolumes": "volumes",
               "maxTotalVolumeGigabytes": "volume-gb"}


def _finite(absolute: Mapping[str, Any], keys: Mapping[str, str]
            ) -> dict[str, float]:
    out: dict[str, float] = {}
    for wire, name in keys.items():
        value = absolute.get(wire)
        if isinstance(value, (int, float)) and value >= 0:
            out[name] = value
    return out


def compute_limits(body: Mapping[str, Any]) -> dict[str, float]:
    """Quota keys from a Nova ``GET /limits`` body."""
    return _finite(body.get("limits", {}).get("absolute", {}), COMPUTE_KEYS)


def volume_limits(absolute: Mapping[str, Any]) -> dict[str, float]:
    """Quota keys from Cinder's absolute limits (wire names)."""
    return _finite(absolute, VOLUME_KEYS)


def label_cost(settings: Mapping[str, Any], flavor) -> Quota:
    values: dict[str, float] = {"instances": 1}
    if flavor is not None:
        values.update(cores=flavor.vcpus, ram=flavor.ram)
    if settings.get("boot-from-volume"):
        values["volumes"] = 1
        values["volume-gb"] = int(settings.get("volume-size") or 50)
    return Quota(values)


class QuotaLimits:
    """Cached cloud limits (see the module docstring)."""

    def __init__(self, fetch_compute: Callable[[], Mapping],
                 fetch_volume: Callable[[], Mapping],
                 uses_volumes: Callable[[], bool], ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._fetch_compute = fetch_compute
        self._fetch_volume = fetch_volume
        self._uses_volumes = uses_volumes
        self._cache = TtlValue("cloud limits", self._fetch, ttl,
                               retry_delay=min(ttl, RETRY_DELAY),
                               clock=clock)

    @property
    def fetches(self) -> int:
        return self._cache.fetches

    def get(self) -> Quota:
        try:
            return self._cache.get()
        except errors.DriverError:      # logged by the cache, once
            return Quota()

    def _fetch(self) -> Quota:
        values = compute_limits(self._fetch_compute())
        if self._uses_volumes():
            values.update(volume_limits(self._fetch_volume()))
        return Quota({k: v for k, v in values.items() if math.isfinite(v)})

    def invalidate(self) -> None:
        self._cache.invalidate()
