"""Quota codes by instance family, and the caches."""

from __future__ import annotations

import math

import pytest

from nodepool.driver import errors
from nodepool.driver.aws.quota import (
    QuotaCache, instance_quota_code, volume_quota_code)


@pytest.mark.parametrize("itype,spot,code", [
    ("t3.medium", False, "L-1216C47A"),
    ("m7i.large", False, "L-1216C47A"),
    ("c6gn.xlarge", True, "L-34B43A08"),
    ("g5.xlarge", False, "L-DB2E81BA"),
    ("vt1.3xlarge", False, "L-DB2E81BA"),
    ("p4d.24xlarge", True, "L-7212CCBC"),
    ("x2idn.large", False, "L-7295265B"),
    ("inf2.xlarge", False, "L-1945791B"),
    ("trn1.2xlarge", True, "L-6B0D517C"),
    ("dl1.24xlarge", False, "L-6E869C2A"),
    ("u-6tb1.metal", False, "L-43DA4232"),
    ("hpc7g.4xlarge", False, "L-F7808C92"),
    ("f1.2xlarge", False, "L-74FC7D96"),
    ("im4gn.large", False, "L-1216C47A"),
])
def test_instance_quota_codes(itype, spot, code):
    assert instance_quota_code(itype, spot) == code


def test_unknown_family_has_no_code():
    assert instance_quota_code("q9.huge") is None
    assert volume_quota_code("gp3") == "L-7A658B76"
    assert volume_quota_code(None) is None


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_service_quota_cached_for_ttl():
    clock = Clock()
    calls = []

    def get_quota(service, code):
        calls.append(code)
        return 64.0

    cache = QuotaCache(lambda names: [], get_quota, ttl=300, clock=clock)
    assert cache.quota("ec2", "L-1216C47A") == 64.0
    clock.now += 299
    assert cache.quota("ec2", "L-1216C47A") == 64.0
    assert calls == ["L-1216C47A"]
    clock.now += 2
    cache.quota("ec2", "L-1216C47A")
    assert len(calls) == 2


def scripted(answers):
    """A get_quota answering (or raising) ``answers`` in turn."""
    def get_quota(service, code):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    return get_quota


def test_unreadable_quota_is_unlimited_until_refresh():
    clock = Clock()
    answers = [errors.TransientError("down"), 8.0]
    cache = QuotaCache(lambda names: [], scripted(answers), ttl=300,
                       clock=clock)
    assert cache.quota("ec2", "L-1") == math.inf
    clock.now += 299
    assert cache.quota("ec2", "L-1") == math.inf     # not asked again
    clock.now += 2
    assert cache.quota("ec2", "L-1") == 8.0


def test_a_failed_refresh_keeps_the_last_value():
    clock = Clock()
    answers = [16.0, errors.ThrottledError("slow"), 32.0]
    cache = QuotaCache(lambda names: [], scripted(answers), ttl=300,
                       clock=clock)
    assert cache.quota("ec2", "L-1") == 16.0
    clock.now += 300
    assert cache.quota("ec2", "L-1") == 16.0         # refresh failed
    clock.now += 299
    assert cache.quota("ec2", "L-1") == 16.0 and answers == [32.0]
    clock.now += 1
    assert cache.quota("ec2", "L-1") == 32.0


def _record(name, vcpus, mib, cores=None):
    cpu = {"DefaultVCpus": vcpus}
    if cores is not None:
        cpu["DefaultCores"] = cores
    return {"InstanceType": name, "VCpuInfo": cpu,
            "MemoryInfo": {"SizeInMiB": mib}}


def test_cores_are_physical_cores_as_upstream_counts_them():
    known = {"t3.medium": _record("t3.medium", 2, 4096, cores=1),
             "c5.xlarge": _record("c5.xlarge", 4, 8192, cores=2),
             "odd.type": _record("odd.type", 3, 1024)}
    cache = QuotaCache(lambda names: [known[n] for n in names],
                       lambda s, c: 1.0)
    info = cache.types(known)
    assert (info["t3.medium"].cores, info["t3.medium"].vcpus) == (1, 2)
    assert (info["c5.xlarge"].cores, info["c5.xlarge"].vcpus) == (2, 4)
    assert info["odd.type"].cores == 3     # no DefaultCores: vCPUs


def test_types_fetched_once_and_unknown_remembered():
    asked = []
    known = {"t3.medium": _record("t3.medium", 2, 4096),
             "c5.large": _record("c5.large", 2, 4096)}

    def describe(names):
        asked.append(list(names))
        if any(n not in known for n in names):
            raise errors.ConfigurationError("InvalidInstanceType")
        return [known[n] for n in names]

    cache = QuotaCache(describe, lambda s, c: 1.0)
    assert cache.cached_type("t3.medium") is None
    info = cache.types(["t3.medium", "bogus.type"])
    assert set(info) == {"t3.medium"} and info["t3.medium"].vcpus == 2
    with pytest.raises(errors.ConfigurationError):
        cache.type_info("bogus.type")
    assert cache.type_info("t3.medium").memory == 4096
    n = len(asked)
    cache.types(["t3.medium", "bogus.type"])
    assert len(asked) == n          # both answers cached
