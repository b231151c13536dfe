"""The TerminateInstances executor and the delete machine."""

from __future__ import annotations

from concurrent.futures import Future, wait

import pytest

from nodepool.driver import errors
from nodepool.driver.aws.delete import DELETES, AwsDelete, Terminator
from nodepool.driver.aws.watcher import Lookup
from nodepool.driver.batcher import Batcher


class Api:
    def __init__(self, existing, failure=None):
        self.existing = set(existing)
        self.failure = failure
        self.calls: list[list[str]] = []

    def mutate(self, op, InstanceIds):
        assert op == "terminate_instances"
        self.calls.append(list(InstanceIds))
        if self.failure is not None:
            raise self.failure
        if not set(InstanceIds) <= self.existing:
            raise errors.NotFoundError("InvalidInstanceID.NotFound")
        return {"TerminatingInstances": [{"InstanceId": i}
                                         for i in InstanceIds]}


class Adapter:
    def __init__(self, api, records=()):
        self.api = api
        self.records = list(records)

    def describe(self, filters):
        ids = filters[0]["Values"]
        return [r for r in self.records if r["InstanceId"] in ids]


def _alive(iid, state="running"):
    return {"InstanceId": iid, "State": {"Name": state}}


def test_one_call_for_many_ids():
    api = Api(["i-1", "i-2", "i-3"])
    assert Terminator(Adapter(api)).terminate(["i-1", "i-2", "i-3"]) == \
        [None, None, None]
    assert api.calls == [["i-1", "i-2", "i-3"]]


def test_unknown_id_does_not_fail_the_others():
    api = Api(["i-1", "i-3"])
    adapter = Adapter(api, [_alive("i-1"), _alive("i-3"),
                            _alive("i-2", "terminated")])
    out = Terminator(adapter).terminate(["i-1", "i-2", "i-3"])
    assert out[0] is None and out[2] is None
    assert isinstance(out[1], errors.NotFoundError)
    assert api.calls[-1] == ["i-1", "i-3"]


def test_throttled_batch_is_every_ids_answer_not_resent():
    # The delete options: a throttle of the whole call is not resent as
    # one call per id, each id gets the throttle (deleted again later).
    api = Api(["i-1", "i-2", "i-3"], failure=errors.ThrottledError("slow"))
    batcher = Batcher("t", Terminator(Adapter(api)).terminate, DELETES)
    futures = [batcher.add(i) for i in ("i-1", "i-2", "i-3")]
    batcher.stop()                      # sends what is queued, now
    wait(futures, 5)
    for f in futures:
        with pytest.raises(errors.ThrottledError):
            f.result()
    assert api.calls == [["i-1", "i-2", "i-3"]]
    assert batcher.stats.retries == 0


def test_a_non_retryable_batch_failure_is_resent_id_by_id():
    api = Api(["i-1", "i-2"], failure=errors.LaunchError("odd answer"))
    batcher = Batcher("t", Terminator(Adapter(api)).terminate, DELETES)
    futures = [batcher.add(i) for i in ("i-1", "i-2")]
    batcher.stop()
    assert api.calls == [["i-1", "i-2"], ["i-1"], ["i-2"]]
    assert batcher.stats.retries == 2
    for f in futures:
        with pytest.raises(errors.LaunchError):
            f.result(0)


def test_run_now_raises_not_found():
    api = Api([])
    batcher = Batcher("t", Terminator(Adapter(api)).terminate, DELETES)
    with pytest.raises(errors.NotFoundError):
        batcher.run_now("i-1")


class Watcher:
    def __init__(self):
        self.records = {}
        self.watched = set()

    def watch(self, iid):
        self.watched.add(iid)

    def unwatch(self, iid):
        self.watched.discard(iid)

    def lookup(self, iid):
        return Lookup(self.records.get(iid), True)


class MachineAdapter:
    """What AwsDelete touches; futures completed by the test."""

    def __init__(self, recent=()):
        self.watcher = Watcher()
        self.recent = set(recent)
        self.futures = []
        self.released = []

    def _future(self):
        future = Future()
        self.futures.append(future)
        return future

    def delete_now(self, iid):
        return self._future()

    @property
    def delete_batcher(self):
        return self

    def add(self, iid):
        return self._future()

    def release_host(self, host):
        self.released.append(host)
        return self._future()

    def created_recently(self, iid):
        return iid in self.recent


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _machine(adapter, external_id, immediate=False):
    m = AwsDelete(adapter, external_id, immediate)
    m.clock = Clock()
    return m


def test_delete_waits_for_terminated():
    adapter = MachineAdapter()
    m = _machine(adapter, "i-1")
    m.advance()
    adapter.futures[0].set_result(None)
    m.advance()
    assert m.state is m.Phase.WAITING and "i-1" in adapter.watcher.watched
    adapter.watcher.records["i-1"] = {"State": {"Name": "shutting-down"}}
    assert not m.advance()
    adapter.watcher.records["i-1"] = {"State": {"Name": "terminated"}}
    assert m.advance() and not adapter.watcher.watched


def test_not_found_of_an_old_instance_is_done():
    adapter = MachineAdapter()
    m = _machine(adapter, "i-1", immediate=True)
    m.advance()
    adapter.futures[0].set_exception(errors.NotFoundError("i-1"))
    assert m.advance()


def test_not_found_of_a_fresh_instance_is_asked_again():
    adapter = MachineAdapter(recent={"i-1"})
    m = _machine(adapter, "i-1", immediate=True)
    m.advance()
    adapter.futures[0].set_exception(errors.NotFoundError("i-1"))
    assert not m.advance()
    assert m.state is m.Phase.SUBMIT
    m.advance()
    assert len(adapter.futures) == 1          # waiting before asking again
    m.clock.now += 5
    m.advance()
    assert len(adapter.futures) == 2


def test_whole_batch_failure_is_raised_for_a_later_retry():
    adapter = MachineAdapter()
    m = _machine(adapter, "i-1")
    m.advance()
    adapter.futures[0].set_exception(errors.ThrottledError("slow"))
    try:
        m.advance()
    except errors.ThrottledError:
        pass
    else:
        raise AssertionError("expected ThrottledError")


def test_dedicated_host_released_after_instance():
    adapter = MachineAdapter()
    m = _machine(adapter, {"instance": "i-1", "host": "h-1"})
    m.advance()
    adapter.futures[0].set_exception(errors.NotFoundError("i-1"))
    m.advance()
    assert adapter.released == ["h-1"] and m.state is m.State.RELEASING
    adapter.futures[1].set_result(None)
    assert m.advance()


def test_host_only_external_id():
    adapter = MachineAdapter()
    m = _machine(adapter, {"host": "h-1"})
    m.advance()
    assert adapter.released == ["h-1"]
    adapter.futures[0].set_exception(errors.NotFoundError("h-1"))
    assert m.advance()
