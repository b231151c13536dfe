"""VM sizes from resource SKUs, limits from usages, and their caches."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.quota import (
    SizeCatalog, SizeInfo, UsageCache, limits_from_usages, parse_sku,
    resources_of)
from nodepool.driver.quota import Quota


def sku(name, vcpus, memory, family, restricted=()):
    return {"resourceType": "virtualMachines", "name": name,
            "family": family,
            "capabilities": [{"name": "vCPUs", "value": str(vcpus)},
                             {"name": "MemoryGB", "value": str(memory)}],
            "restrictions": [{"type": "Location", "values": list(restricted),
                              "reasonCode": "NotAvailableForSubscription"}]
            if restricted else []}


def test_parse_sku():
    info = parse_sku(sku("Standard_B1ls", 1, 0.5, "standardBSFamily"),
                     "westus")
    assert info == SizeInfo("Standard_B1ls", 1, 512, "standardBSFamily")
    assert parse_sku({"resourceType": "disks", "name": "x"}, "w") is None
    assert parse_sku(sku("S", 2, 4, "f", ["westus"]), "westus").restricted
    assert not parse_sku(sku("S", 2, 4, "f", ["eastus"]), "westus")\
        .restricted


def test_resources_of():
    assert resources_of(SizeInfo("S", 4, 16384, "standardDSv3Family")) == {
        "instances": 1, "cores": 4, "ram": 16384, "standardDSv3Family": 4}
    # A size the catalog does not know: what upstream writes for it.
    assert resources_of(None) == {"instances": 1, "cores": 0, "ram": 0}


def test_memory_is_truncated_to_mib_as_upstream_counts_it():
    # 0.7 GiB is 716.8 MiB: upstream's int() gives 716 (rounding: 717).
    info = parse_sku(sku("Standard_X", 1, 0.7, "standardXFamily"), "westus")
    assert info.memory_mib == 716


def test_limits_from_usages():
    usages = [{"name": {"value": "cores"}, "limit": 100},
              {"name": {"value": "virtualMachines"}, "limit": 25},
              {"name": {"value": "standardBSFamily"}, "limit": 10},
              {"name": {"value": "standardDSv3Family"}, "limit": 20}]
    assert limits_from_usages(usages, {"standardBSFamily"}) == Quota(
        cores=100, instances=25, standardBSFamily=10)


def test_size_catalog_caches_and_keeps_old_answers(clock):
    calls = []

    def fetch():
        calls.append(1)
        if len(calls) == 2:
            raise errors.TransientError("503")
        return [sku("Standard_B2s", 2, 4, "standardBSFamily")]

    catalog = SizeCatalog("westus", fetch, ttl=60, clock=clock)
    assert catalog.cached("Standard_B2s") is None     # never fetches
    assert catalog.size("standard_b2s").vcpus == 2    # case-insensitive
    assert catalog.size("Standard_Nope") is None
    assert len(calls) == 1
    clock.advance(61)
    assert catalog.size("Standard_B2s").vcpus == 2    # failed: old answer
    assert len(calls) == 2
    assert catalog.cached("Standard_B2s").family == "standardBSFamily"


def test_usage_cache_raises_without_any_answer(clock):
    def fetch():
        raise errors.TransientError("503")

    with pytest.raises(errors.TransientError):
        UsageCache(fetch, clock=clock).limits(())
