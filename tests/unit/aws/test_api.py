"""AwsApi's retry loop: throttling slows the limiter, 5xx are retried."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from nodepool.driver import errors
from nodepool.driver.aws.api import AwsApi


def client_error(code, status=400):
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


class Script:
    """A callable that raises the scripted errors, then answers."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, **params):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {"ok": params}


class FakeTime:
    """Clock and sleep for the limiters and back-off: sleeping is instant."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_api(**kw):
    """An api with no clients; returns it and the back-off sleeps."""
    t = FakeTime()
    api = AwsApi("t", None, "r", rate=10.0, clients={}, sleep=t.sleep,
                 clock=t.clock, **kw)
    backoffs = []
    original = api._delay

    def delay(*args):
        backoffs.append(original(*args))
        return backoffs[-1]

    api._delay = delay
    return api, backoffs


def test_throttled_calls_are_retried_and_slow_the_limiter():
    api, sleeps = make_api()
    fn = Script(client_error("RequestLimitExceeded", 503),
                client_error("RequestLimitExceeded", 503))
    assert api.call(api.limiter, fn, "RunInstances", {"a": 1}) == \
        {"ok": {"a": 1}}
    assert fn.calls == 3
    assert api.limiter.stats.throttled == 2
    assert api.limiter.effective_rate < 10.0
    assert len(sleeps) == 2 and sleeps[1] > 0
    assert api.stats()["failures"] == {"RunInstances": 2}


def test_a_throttle_storm_is_outlasted_not_counted():
    # Far more throttles than a small count: repeated until it passes.
    api, _ = make_api()
    fn = Script(*[client_error("RequestLimitExceeded", 503)] * 20)
    assert api.call(api.limiter, fn, "RunInstances", {}) == {"ok": {}}
    assert fn.calls == 21 and api.limiter.stats.throttled == 20


def test_throttling_gives_up_at_its_deadline():
    api, _ = make_api(throttle_deadline=10.0)
    fn = Script(*[client_error("RequestLimitExceeded", 503)] * 100)
    start = api._clock()
    with pytest.raises(errors.ThrottledError):
        api.call(api.limiter, fn, "RunInstances", {})
    assert 10.0 <= api._clock() - start
    assert 3 <= fn.calls < 100
    assert api.limiter.stats.throttled == fn.calls


def test_success_recovers_the_rate():
    api, _ = make_api()
    api.limiter.throttled()
    slowed = api.limiter.effective_rate
    api.call(api.limiter, Script(), "Op", {})
    assert api.limiter.effective_rate > slowed


def test_transient_errors_retried_then_raised():
    api, _ = make_api(transient_attempts=2)
    fn = Script(client_error("InternalError", 500))
    api.call(api.limiter, fn, "Op", {})
    assert fn.calls == 2
    fn = Script(*[client_error("InternalError", 500)] * 3)
    with pytest.raises(errors.TransientError):
        api.call(api.limiter, fn, "Op", {})
    assert fn.calls == 2


@pytest.mark.parametrize("code,cls", [
    ("InsufficientInstanceCapacity", errors.CapacityError),
    ("InvalidAMIID.NotFound", errors.ConfigurationError),
])
def test_other_errors_raised_at_once(code, cls):
    api, sleeps = make_api()
    fn = Script(client_error(code, 500))
    with pytest.raises(cls) as info:
        api.call(api.limiter, fn, "RunInstances", {})
    assert fn.calls == 1 and sleeps == []
    assert isinstance(info.value.__cause__, ClientError)


def test_admitted_call_takes_no_slot_for_its_first_attempt():
    api, _ = make_api()
    api.call(api.limiter, Script(), "Op", {}, admitted=True)
    assert api.limiter.stats.calls == 0
    api.call(api.limiter, Script(), "Op", {})
    assert api.limiter.stats.calls == 1


def test_read_limiter_is_ten_times_faster():
    api, _ = make_api()
    assert api.read_limiter.rate == 100.0
    unlimited = AwsApi("t", None, "r", rate=0, clients={})
    assert unlimited.limiter.rate == unlimited.read_limiter.rate == 0
