"""Mapping RunInstances answers onto launches; the create machine's steps."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from nodepool.driver import errors
from nodepool.driver.aws.create import (
    AwsCreate, InstanceCreator, map_instances)
from nodepool.driver.aws.watcher import Lookup
from nodepool.driver.backoff import AccessGate
from nodepool.driver.instance import Instance


def _rec(iid, index=None):
    record = {"InstanceId": iid}
    if index is not None:
        record["AmiLaunchIndex"] = index
    return record


def test_map_by_launch_index_not_answer_order(spec_factory):
    specs = [spec_factory(f"{n:010d}") for n in range(3)]
    slots = map_instances(specs, [_rec("i-c", 2), _rec("i-a", 0),
                                  _rec("i-b", 1)])
    assert [s["InstanceId"] for s in slots] == ["i-a", "i-b", "i-c"]


def test_partial_fulfilment_leaves_last_slots_empty(spec_factory):
    specs = [spec_factory(f"{n:010d}") for n in range(3)]
    slots = map_instances(specs, [_rec("i-a", 0)])
    assert slots[0]["InstanceId"] == "i-a" and slots[1:] == [None, None]


def test_records_without_index_fill_in_order(spec_factory):
    specs = [spec_factory(f"{n:010d}") for n in range(2)]
    slots = map_instances(specs, [_rec("i-x"), _rec("i-y")])
    assert [s["InstanceId"] for s in slots] == ["i-x", "i-y"]


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


class Adapter:
    """Just what AwsCreate touches, with futures the test completes."""

    def __init__(self):
        self.watcher = Watcher()
        self.access = AccessGate("test")
        self.futures: list[Future] = []
        self.deleted: list[str] = []

    def submit_create(self, machine):
        future = Future()
        self.futures.append(future)
        return future

    def created(self, iid):
        self.created_ids = getattr(self, "created_ids", []) + [iid]

    def node_instance(self, record, label, external_id):
        return Instance(external_id=external_id)

    def delete_now(self, iid):
        self.deleted.append(iid)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def machine(spec_factory):
    adapter = Adapter()
    m = AwsCreate(adapter, spec_factory())
    m.clock = Clock()
    return m, adapter


def test_happy_path(spec_factory):
    m, adapter = machine(spec_factory)
    assert not m.advance()
    assert m.state is m.Phase.CREATING
    assert not m.advance()                     # call still running
    adapter.futures[0].set_result({"InstanceId": "i-1"})
    m.advance()
    # upstream's object form, written as soon as EC2 named the instance
    assert m.external_id == {"instance": "i-1"}
    assert "i-1" in adapter.watcher.watched
    assert m.state is m.State.BOOTING
    adapter.watcher.records["i-1"] = {"InstanceId": "i-1",
                                      "State": {"Name": "pending"}}
    assert not m.advance()
    adapter.watcher.records["i-1"]["State"]["Name"] = "running"
    assert m.advance()
    assert m.instance.external_id == {"instance": "i-1"}
    assert not adapter.watcher.watched


def test_a_transient_create_failure_fails_the_attempt(spec_factory):
    # LimitedApi repeated it already (the one layer): final here.
    m, adapter = machine(spec_factory)
    m.advance()
    adapter.futures[0].set_exception(errors.TransientError("503"))
    with pytest.raises(errors.TransientError):
        m.advance()
    m.clock.now += 60
    assert len(adapter.futures) == 1


@pytest.mark.parametrize("error", [errors.CapacityError("c"),
                                   errors.ConfigurationError("x")])
def test_other_failures_are_raised(spec_factory, error):
    m, adapter = machine(spec_factory)
    m.advance()
    adapter.futures[0].set_exception(error)
    with pytest.raises(type(error)):
        m.advance()


def test_instance_that_dies_while_booting_fails_the_attempt(spec_factory):
    m, adapter = machine(spec_factory)
    m.advance()
    adapter.futures[0].set_result({"InstanceId": "i-1"})
    m.advance()
    adapter.watcher.records["i-1"] = {
        "InstanceId": "i-1", "State": {"Name": "terminated"},
        "StateReason": {"Message": "Server.SpotInstanceTermination"}}
    with pytest.raises(errors.LaunchError, match="terminated"):
        m.advance()


def test_abandoned_attempt_deletes_what_it_still_creates(spec_factory):
    m, adapter = machine(spec_factory)
    m.advance()
    adapter.futures[0].set_running_or_notify_cancel()   # call in flight
    m.abandon()
    adapter.futures[0].set_result({"InstanceId": "i-9"})
    assert adapter.deleted == [{"instance": "i-9"}]


def test_abandoned_before_the_call_cancels_it(spec_factory):
    m, adapter = machine(spec_factory)
    m.advance()
    m.abandon()
    assert adapter.futures[0].cancelled()
    assert adapter.deleted == []


def test_dedicated_host_is_part_of_the_external_id(spec_factory):
    m, adapter = machine(spec_factory)
    m.advance()
    adapter.futures[0].set_result({"InstanceId": "i-1", "HostId": "h-1"})
    m.advance()
    assert m.external_id == {"instance": "i-1", "host": "h-1"}
    assert "i-1" in adapter.watcher.watched
    adapter.watcher.records["i-1"] = {"InstanceId": "i-1",
                                      "State": {"Name": "running"}}
    assert m.advance()
    assert m.instance.external_id == {"instance": "i-1", "host": "h-1"}


class _Api:
    def __init__(self, started: int):
        self.started = started
        self.calls: list[dict] = []

    def mutate(self, action, admitted=False, **call):
        self.calls.append(call)
        return {"Instances": [{"InstanceId": f"i-{n}", "AmiLaunchIndex": n}
                              for n in range(self.started)]}


class _Images:
    def resolve(self, label, upload):
        return {"ImageId": "ami-1"}


class _Tagger:
    def __init__(self):
        self.added: list[tuple[str, dict]] = []

    def add(self, iid, tags):
        self.added.append((iid, dict(tags)))


class _CreatorAdapter:
    def __init__(self, started):
        self.api = _Api(started)
        self.images = _Images()
        self.tagger = _Tagger()


def _spec_tags(call, kind):
    for spec in call["TagSpecifications"]:
        if spec["ResourceType"] == kind:
            return {t["Key"]: t["Value"] for t in spec["Tags"]}
    raise AssertionError(f"no {kind} tags")


def test_batch_anchor_on_instances_siblings_tagged_first(spec_factory):
    ids = [f"{n:010d}" for n in range(1, 5)]
    adapter = _CreatorAdapter(started=4)
    out = InstanceCreator(adapter).send([spec_factory(i) for i in ids])
    assert [r["InstanceId"] for r in out] == ["i-0", "i-1", "i-2", "i-3"]
    call = adapter.api.calls[0]
    instance_tags = _spec_tags(call, "instance")
    assert instance_tags["nodepool_node_id"] == ids[0]
    assert instance_tags["nodepool_provider_name"] == "aws"
    # volumes are never retagged: no node id a sibling's would keep
    assert "nodepool_node_id" not in _spec_tags(call, "volume")
    order = [(iid, tags["nodepool_node_id"])
             for iid, tags in adapter.tagger.added]
    assert order == [("i-1", ids[1]), ("i-2", ids[2]), ("i-3", ids[3]),
                     ("i-0", ids[0])]


def test_partial_batch_tags_what_exists(spec_factory):
    ids = [f"{n:010d}" for n in range(1, 4)]
    adapter = _CreatorAdapter(started=2)
    out = InstanceCreator(adapter).send([spec_factory(i) for i in ids])
    assert isinstance(out[2], errors.TransientError)
    assert [iid for iid, _ in adapter.tagger.added] == ["i-1", "i-0"]


def test_lone_create_carries_every_tag_on_both(spec_factory):
    adapter = _CreatorAdapter(started=1)
    InstanceCreator(adapter).send([spec_factory("0000000009")])
    call = adapter.api.calls[0]
    for kind in ("instance", "volume"):
        tags = _spec_tags(call, kind)
        assert tags["nodepool_node_id"] == "0000000009"
        assert tags["Name"] == "np0000000009"
    assert adapter.tagger.added == []
