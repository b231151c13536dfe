"""Instance records → Instance values, and the watcher thread."""

from __future__ import annotations

import threading

from nodepool.driver.aws import batchtags
from nodepool.driver.aws.describe import (
    InstanceWatcher, instance_state, tags_of, to_instance)
from nodepool.driver.instance import InstanceState

RECORD = {
    "InstanceId": "i-1", "State": {"Name": "running"},
    "PrivateIpAddress": "10.0.0.5", "PublicIpAddress": "54.1.2.3",
    "Placement": {"AvailabilityZone": "us-east-1a"},
    "InstanceType": "t3.medium", "InstanceLifecycle": "spot",
    "NetworkInterfaces": [{"Ipv6Addresses": [{"Ipv6Address": "2600::1"}]}],
    "Tags": [{"Key": "nodepool_node_id", "Value": "0000000001"},
             {"Key": "nodepool_provider_name", "Value": "aws"}],
}


def test_state_table():
    for name, state in [("pending", InstanceState.PENDING),
                        ("running", InstanceState.RUNNING),
                        ("shutting-down", InstanceState.STOPPING),
                        ("stopping", InstanceState.STOPPING),
                        ("terminated", InstanceState.DELETED),
                        ("stopped", InstanceState.ERROR),
                        ("weird", InstanceState.UNKNOWN)]:
        assert instance_state({"State": {"Name": name}}) is state


def test_to_instance():
    inst = to_instance(RECORD, "us-east-1", {"instances": 1, "cores": 2})
    assert inst.external_id == "i-1"
    assert inst.state is InstanceState.RUNNING
    assert inst.interface_ip == "54.1.2.3"
    assert (inst.private_ipv4, inst.public_ipv6) == ("10.0.0.5", "2600::1")
    assert (inst.az, inst.region, inst.cloud) == \
        ("us-east-1a", "us-east-1", "AWS")
    assert inst.node_id == "0000000001" and inst.provider_name == "aws"
    assert inst.node_properties == {"spot": True, "fleet": False}
    assert inst.resources == {"instances": 1, "cores": 2}


def test_private_only_interface_ip():
    record = {**RECORD, "PublicIpAddress": None, "NetworkInterfaces": []}
    assert to_instance(record, "r").interface_ip == "10.0.0.5"


def test_node_id_derived_from_batch_tags():
    tags = batchtags.encode("tok", ["0000000007", "0000000008"])
    record = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
              "AmiLaunchIndex": 1}
    assert tags_of(record)["nodepool_node_id"] == "0000000008"


class Describer:
    """Answers with whatever ``records`` holds; counts and can block."""

    def __init__(self):
        self.records = {}
        self.calls = []
        self.called = threading.Event()

    def __call__(self, filters):
        ids = filters[0]["Values"]
        self.calls.append(list(ids))
        self.called.set()
        return [self.records[i] for i in ids if i in self.records]


def _wait(predicate, timeout=5.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    raise AssertionError("condition not met")


def test_watcher_describes_watched_ids_in_one_call():
    describe = Describer()
    describe.records = {"i-1": {"InstanceId": "i-1",
                                "State": {"Name": "running"}}}
    watcher = InstanceWatcher("t", describe, interval=0.05, min_gap=0.0)
    watcher.start()
    try:
        assert not describe.called.wait(0.1)    # nothing watched: no calls
        watcher.watch("i-1")
        watcher.watch("i-2")
        _wait(lambda: watcher.lookup("i-2").fresh)
        assert watcher.lookup("i-1").record["InstanceId"] == "i-1"
        assert watcher.lookup("i-2").record is None   # fresh: not there
        assert any(sorted(c) == ["i-1", "i-2"] for c in describe.calls)
        watcher.unwatch("i-1")
        watcher.unwatch("i-2")
        assert watcher.watched == 0
    finally:
        watcher.stop()


def test_failed_describe_keeps_records():
    describe = Describer()
    describe.records = {"i-1": {"InstanceId": "i-1",
                                "State": {"Name": "pending"}}}
    fail = threading.Event()

    def flaky(filters):
        if fail.is_set():
            raise RuntimeError("boom")
        return describe(filters)

    watcher = InstanceWatcher("t", flaky, interval=0.02, min_gap=0.0)
    watcher.start()
    try:
        watcher.watch("i-1")
        _wait(lambda: watcher.lookup("i-1").record is not None)
        fail.set()
        _wait(lambda: watcher.errors >= 2)
        assert watcher.lookup("i-1").record["State"]["Name"] == "pending"
    finally:
        watcher.stop()
