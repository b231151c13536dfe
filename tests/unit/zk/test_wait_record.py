"""The wait record of ``nodepool.zk.waits``: its JSON, its checks, its
znode name, and the ``no-pool`` reasons readers add themselves."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from nodepool.zk import NodeRequest
from nodepool.zk.waits import RequestWait, unserved, wait_name

WORKER = "host.example.org-PoolWorker.aws-main-0123456789abcdef"


def test_round_trip_and_name():
    wait = RequestWait(request="200-0000000001", worker=WORKER,
                       kind="quota", text="at quota", since=1.5,
                       updated=2.0, provider="aws", pool="main",
                       hostname="host", details={"free": 0})
    back = RequestWait.from_json(wait.to_json())
    assert back.__dict__ == wait.__dict__
    assert wait.name == "200-0000000001:0123456789abcdef"
    assert wait_name("200-0000000001", WORKER) == wait.name
    assert sorted(json.loads(wait.to_json())) == sorted(RequestWait.FIELDS)


@pytest.mark.parametrize("data, problem", [
    ([], "not a JSON object"),
    ({"request": 1, "worker": "w", "kind": "k", "text": "t"}, "'request'"),
    ({"request": "r", "worker": "w", "kind": "k"}, "'text'"),
    ({"request": "r", "worker": "w", "kind": "k", "text": "t",
      "since": "yesterday"}, "'since'"),
    ({"request": "r", "worker": "w", "kind": "k", "text": "t",
      "details": []}, "'details'"),
])
def test_bad_records_name_the_field(data, problem):
    with pytest.raises(ValueError, match=problem):
        RequestWait.from_json(json.dumps(data).encode())


def test_unknown_keys_are_ignored_and_missing_ones_default():
    wait = RequestWait.from_json(json.dumps({
        "request": "r", "worker": "w", "kind": "later-kind", "text": "t",
        "new": 1}).encode())
    assert (wait.kind, wait.since, wait.details) == ("later-kind", 0.0, {})


def test_unserved_names_the_labels_no_pool_offers():
    pools = [SimpleNamespace(supported_labels=["small"]),
             SimpleNamespace(supported_labels=None)]
    waiting = NodeRequest(id="1", state="requested", created_time=5.0,
                          node_types=["small", "gpu", "gpu"])
    served = NodeRequest(id="2", state="requested", node_types=["small"])
    pending = NodeRequest(id="3", state="pending", node_types=["gpu"])
    found = unserved([waiting, served, pending], pools)
    assert list(found) == ["1"]
    [wait] = found["1"]
    assert (wait.kind, wait.text, wait.since, wait.details) == (
        "no-pool", "no registered pool offers label(s) gpu", 5.0,
        {"labels": ["gpu"]})
