"""Cloud limits into Quota, their cache, and what a label costs."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.driver import errors
from nodepool.driver.openstack.quota import (QuotaLimits, compute_limits,
                                             label_cost, volume_limits)
from nodepool.driver.quota import Quota

NOVA = {"limits": {"absolute": {"maxTotalInstances": 10,
                                "maxTotalCores": -1,
                                "maxTotalRAMSize": 51200,
                                "totalInstancesUsed": 3}}}
CINDER = {"maxTotalVolumes": 5, "maxTotalVolumeGigabytes": 100,
          "totalVolumesUsed": 1}


def test_wire_limits_to_quota_keys():
    assert compute_limits(NOVA) == {"instances": 10, "ram": 51200}
    assert volume_limits(CINDER) == {"volumes": 5, "volume-gb": 100}
    assert volume_limits({"maxTotalVolumes": -1}) == {}


def test_label_cost():
    flavor = SimpleNamespace(vcpus=2, ram=4096)
    assert label_cost({}, flavor) == Quota(instances=1, cores=2, ram=4096)
    assert label_cost({"boot-from-volume": True, "volume-size": 20},
                      flavor) == Quota(instances=1, cores=2, ram=4096,
                                       volumes=1, **{"volume-gb": 20})
    assert label_cost({}, None) == Quota(instances=1)


def test_limits_cached_refreshed_and_volume_only_when_used(clock):
    uses = [False]
    limits = QuotaLimits(lambda: NOVA, lambda: CINDER, lambda: uses[0],
                         ttl=60, clock=clock)
    assert limits.get() == Quota(instances=10, ram=51200)
    assert limits.get() == Quota(instances=10, ram=51200)
    assert limits.fetches == 1
    uses[0] = True
    limits.invalidate()
    assert limits.get().get("volume-gb") == 100
    clock.advance(61)
    limits.get()
    assert limits.fetches == 3


def test_failed_refresh_keeps_old_limits_and_retries_soon(clock):
    answers = [NOVA, errors.TransientError("down"), NOVA]

    def fetch():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    limits = QuotaLimits(fetch, dict, lambda: False, ttl=60, clock=clock)
    first = limits.get()
    clock.advance(61)
    assert limits.get() == first            # stale but known
    clock.advance(1)
    assert limits.get() == first            # no new call yet
    clock.advance(5)
    assert limits.get() == first and answers == []


def test_no_limits_known_means_unlimited(clock):
    def fetch():
        raise errors.TransientError("down")
    assert QuotaLimits(fetch, dict, lambda: False, clock=clock).get() == \
        Quota()
