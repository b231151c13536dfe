"""OpenStackApi: the rate conversion, the two limiters, classification."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.openstack.api import (READ_FACTOR, OpenStackApi,
                                           calls_per_second)


class Region:
    name = "fake"
    region_name = "RegionOne"


def test_rate_is_seconds_between_calls():
    assert calls_per_second(0.2) == pytest.approx(5.0)
    assert calls_per_second(1.0) == 1.0
    assert calls_per_second(0) == 0.0          # unlimited
    assert calls_per_second(None) == 0.0


def test_limiters_follow_the_rate():
    api = OpenStackApi("p", Region(), 0.5, connect=lambda region: None)
    assert api.limiter.rate == pytest.approx(2.0)
    assert api.read_limiter.rate == pytest.approx(2.0 * READ_FACTOR)
    unlimited = OpenStackApi("p", Region(), 0, connect=lambda region: None)
    assert unlimited.limiter.rate == 0 and unlimited.read_limiter.rate == 0
    assert api.region == "RegionOne" and api.cloud == "fake"


def test_calls_are_counted_classified_and_retried_in_one_layer():
    from keystoneauth1 import exceptions as ks_exc

    slept = []
    api = OpenStackApi("p", Region(), 0, connect=lambda region: "conn",
                       throttle_deadline=0.0, transient_attempts=2,
                       sleep=slept.append)
    assert api.conn == "conn"
    assert api.write("create server", lambda: 42) == 42
    with pytest.raises(errors.TransientError) as caught:
        api.read("list servers",
                 _raise(ks_exc.UnknownConnectionError("reset", None)))
    assert isinstance(caught.value.__cause__, ks_exc.UnknownConnectionError)
    throttled = errors.ThrottledError("429", retry_after=3)
    with pytest.raises(errors.ThrottledError):
        api.write("create server", _raise(throttled))
    assert api.limiter.stats.throttled == 1     # once per answer
    assert api.stats()["calls"] == {"create server": 2, "list servers": 2}
    # not idempotent: a transient error is not repeated, a throttle is
    with pytest.raises(errors.TransientError):
        api.write("create server", _raise(errors.TransientError("reset")),
                  idempotent=False)
    assert api.stats()["calls"]["create server"] == 3


def test_access_errors_hold_every_call_back():
    from keystoneauth1 import exceptions as ks_exc

    from nodepool.driver.backoff import AccessGate

    now = [0.0]
    gate = AccessGate("p", base=1.0, clock=lambda: now[0])
    api = OpenStackApi("p", Region(), 0, connect=lambda region: "conn",
                       access=gate)
    sent = []

    def refused():
        sent.append(1)
        raise ks_exc.Unauthorized("The request you have made requires "
                                  "authentication. (HTTP 401)")
    with pytest.raises(errors.CredentialError):
        api.read("list servers", refused)
    for _ in range(5):                  # no call leaves during the back-off
        with pytest.raises(errors.CredentialError, match="backing off"):
            api.write("create server", refused)
    assert len(sent) == 1
    now[0] = 1.0
    assert api.read("list servers", lambda: "ok") == "ok"  # the probe
    assert api.write("create server", lambda: 1) == 1
    assert not gate.closed


def _raise(error):
    def fn():
        raise error
    return fn
