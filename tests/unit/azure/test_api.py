"""The retry loop: every 429 reaches the limiter, 5xx retried, rest raised."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.api import READ_RATE_FACTOR, AzureApi
from nodepool.driver.azure.errors import CREATE
from tests.unit.azure.conftest import arm_error


class Script:
    """Raises the given outcomes in turn, then returns "ok"."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return "ok"


@pytest.fixture
def api(clock):
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.advance(seconds)

    api = AzureApi("p", rate=2.0, sleep=sleep, clock=clock,
                   throttle_deadline=10.0, transient_attempts=2)
    api.slept = slept
    return api


def test_429_slows_every_caller_and_waits_retry_after(api, clock):
    fn = Script(arm_error(429, "TooManyRequests",
                          headers={"Retry-After": "4"}))
    start = clock()
    assert api.write("PUT vms", fn, kind=CREATE) == "ok"
    assert fn.calls == 2
    assert api.limiter.stats.throttled == 1
    assert api.limiter.effective_rate < api.limiter.rate
    # The second attempt started only after Retry-After had passed.
    assert clock() - start >= 4.0
    assert api.failures["PUT vms"] == 1 and api.calls["PUT vms"] == 2


def test_throttling_gives_up_at_its_deadline(api, clock):
    fn = Script(*[arm_error(429, "TooManyRequests")] * 100)
    start = clock()
    with pytest.raises(errors.ThrottledError):
        api.write("PUT nics", fn)
    assert clock() - start >= 10.0
    assert 3 <= fn.calls < 100
    assert api.limiter.stats.throttled == fn.calls


def test_transient_retried_then_raised(api):
    assert api.read("LIST vms", Script(arm_error(503))) == "ok"
    assert len(api.slept) == 1
    fn = Script(arm_error(500, "InternalServerError"),
                arm_error(502, None), arm_error(500, None))
    with pytest.raises(errors.TransientError):
        api.write("PUT pips", fn)
    assert fn.calls == 2


def test_other_errors_raise_at_once_classified(api):
    fn = Script(arm_error(409, "OperationNotAllowed", "exceeding quota"))
    with pytest.raises(errors.QuotaError) as info:
        api.write("PUT vms", fn, kind=CREATE)
    assert fn.calls == 1
    assert info.value.__cause__ is not None


def test_reads_have_their_own_faster_limiter(api):
    assert api.read_limiter.rate == 2.0 * READ_RATE_FACTOR
    api.read("LIST vms", Script())
    assert api.read_limiter.stats.calls == 1
    assert api.limiter.stats.calls == 0
    stats = api.stats()
    assert stats["calls"] == {"LIST vms": 1}
    assert stats["read_limiter"]["calls"] == 1
