"""The TerminateInstances executor: not-found ids, whole-batch failures."""

from __future__ import annotations

from nodepool.driver import errors
from nodepool.driver.aws.delete import Failed, Terminator


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


def test_throttled_batch_is_returned_as_value_not_resent():
    api = Api(["i-1", "i-2"], failure=errors.ThrottledError("slow"))
    out = Terminator(Adapter(api)).terminate(["i-1", "i-2"])
    assert all(isinstance(x, Failed) for x in out)
    assert len(api.calls) == 1


def test_terminate_one_raises():
    api = Api([])
    try:
        Terminator(Adapter(api)).terminate_one("i-1")
    except errors.NotFoundError:
        pass
    else:
        raise AssertionError("expected NotFoundError")
