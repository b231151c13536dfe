"""NodeRequest serialisation and ordering (zookeeper.md §3, §4)."""

import json
import random

import pytest

from nodepool.zk import BadZnode, NodeRequest, RequestState


def test_defaults_and_all_keys():
    data = NodeRequest(state=RequestState.REQUESTED).to_dict()
    assert data == {
        "state": "requested", "state_time": None, "node_types": [],
        "nodes": [], "declined_by": [], "reuse": True, "requestor": None,
        "requestor_data": None, "provider": None, "relative_priority": 0,
        "event_id": None, "created_time": None, "tenant_name": None,
    }


def test_round_trip_and_unknown_keys():
    raw = {"state": "pending", "state_time": 3.5, "node_types": ["a", "a"],
           "nodes": ["0000000001"], "declined_by": ["w1"], "reuse": False,
           "requestor": "zuul-1", "requestor_data": {"build": "x"},
           "provider": "aws", "relative_priority": 4, "event_id": "e1",
           "created_time": 1.0, "tenant_name": "t",
           "span_info": {"traceparent": "00-abc"}}
    request = NodeRequest.from_dict("200-0000000009", raw)
    assert json.loads(request.to_json()) == raw
    assert request.extra == {"span_info": {"traceparent": "00-abc"}}


def test_missing_keys_get_defaults():
    request = NodeRequest.from_dict("100-0000000001", {"state": "requested"})
    assert request.reuse is True and request.relative_priority == 0
    assert request.node_types == [] and request.declined_by == []


def test_priority_and_sequence_come_from_the_id():
    request = NodeRequest(id="300-0000000042", state="requested")
    assert request.priority == "300"
    assert request.sequence == "0000000042"
    assert NodeRequest(state="requested").priority is None


def test_bad_state_rejected():
    with pytest.raises(BadZnode):
        NodeRequest.from_dict("100-0000000001", {"state": "ready"})


def test_sort_key_orders_prefix_then_relative_priority_then_sequence():
    rng = random.Random(4)
    requests = []
    for seq in range(50):
        prio = rng.choice(["100", "200", "300", "900"])
        requests.append(NodeRequest(id=f"{prio}-{seq:010d}",
                                    state="requested",
                                    relative_priority=rng.randint(0, 3)))
    rng.shuffle(requests)
    ordered = sorted(requests, key=NodeRequest.sort_key)
    keys = [(r.priority, r.relative_priority, r.sequence) for r in ordered]
    assert keys == sorted(keys)
    # A low relative_priority cannot jump a better prefix.
    assert ordered[0].priority == "100"
