import math

from nodepool.driver.quota import Quota


def test_missing_keys_are_unlimited_limits_and_zero_usage():
    limits = Quota(instances=2)
    assert Quota(instances=1, cores=1000).fits(limits, Quota(instances=1))
    assert not Quota(instances=1).fits(limits, Quota(instances=2))


def test_arithmetic_and_finite():
    a = Quota(instances=1, cores=2)
    b = Quota(instances=1, ram=512)
    assert (a + b).values == {"instances": 2, "cores": 2, "ram": 512}
    assert (a + b - b).values == {"instances": 1, "cores": 2, "ram": 0}
    assert Quota(instances=math.inf, cores=4).finite() == {"cores": 4}


def test_exceeds_and_minimum():
    assert Quota(cores=9).exceeds(Quota(cores=8))
    assert not Quota(cores=8).exceeds(Quota(cores=8))
    assert Quota(cores=8).minimum(Quota(cores=4, ram=1)).values == {
        "cores": 4, "ram": 1}


def test_from_resources_counts_one_instance_and_ignores_non_numbers():
    q = Quota.from_resources({"cores": 2, "ram": 1024, "note": "x",
                              "flag": True})
    assert q.values == {"cores": 2, "ram": 1024, "instances": 1}
    assert Quota.from_resources(None).values == {"instances": 1}
    assert Quota.total([Quota(cores=1)] * 3).values == {"cores": 3}
