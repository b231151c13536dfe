"""The fault suite's verdicts (tools/faults/observers.py), from recorded data.

The observers decide what counts as a double allocation, a duplicated
launch and a batch instance's node id; these tests pin those rules down
without a ZooKeeper or a cloud.
"""

from __future__ import annotations

from tools.faults import observers as obs


def moves(allocs: dict[str, list[str]]):
    return obs.moves_of(allocs)


def test_node_moved_between_open_requests_is_allocated_twice():
    moved = moves({"n1": ["r1", "r2"], "n2": ["r3"]})
    final = {"r1": {"state": "fulfilled", "nodes": ["n9"]},
             "r2": {"state": "fulfilled", "nodes": ["n1"]},
             "r3": {"state": "fulfilled", "nodes": ["n2"]}}
    assert obs.allocated_twice(moved, final) == ["n1:r1"]


def test_node_given_back_then_reallocated_is_fine():
    # A lost request's reset deallocates its node (None), another request
    # takes it, and the first one is served with a new node.
    moved = moves({"n1": ["r1", None, "r2"]})
    final = {"r1": {"state": "fulfilled", "nodes": ["n9"]},
             "r2": {"state": "fulfilled", "nodes": ["n1"]}}
    assert moved == []
    assert obs.allocated_twice(moved, final) == []
    # ... but not if both requests list it.
    final["r1"]["nodes"] = ["n1"]
    assert obs.allocated_twice(moved, final) == ["n1:r1,r2"]


def test_node_moved_away_from_a_failed_request_is_fine():
    moved = moves({"n1": ["r1", "r2"]})
    final = {"r1": {"state": "failed", "nodes": []},
             "r2": {"state": "fulfilled", "nodes": ["n1"]}}
    assert obs.allocated_twice(moved, final) == []


def test_node_listed_by_two_fulfilled_requests_counts():
    moved = moves({})
    final = {"r1": {"state": "fulfilled", "nodes": ["n1"]},
             "r2": {"state": "fulfilled", "nodes": ["n1"]}}
    assert obs.allocated_twice(moved, final) == ["n1:r1,r2"]


def test_batch_instance_node_id_comes_from_its_launch_index():
    tags = [{"Key": "nodepool_batch_id", "Value": "b1"},
            {"Key": "nodepool_batch_nodes_0", "Value": "0001,0002"},
            {"Key": "nodepool_batch_nodes_1", "Value": "0003"}]
    assert obs.node_id_of({"Tags": tags, "AmiLaunchIndex": 2}) == "0003"
    assert obs.node_id_of({"Tags": tags, "AmiLaunchIndex": 5}) is None
    own = tags + [{"Key": "nodepool_node_id", "Value": "0007"}]
    assert obs.node_id_of({"Tags": own, "AmiLaunchIndex": 0}) == "0007"


def test_two_instances_for_one_node_are_duplicated():
    insts = [{"id": "i-1", "node": "0001", "state": "terminated"},
             {"id": "i-2", "node": "0001", "state": "running"},
             {"id": "i-3", "node": "0002", "state": "running"},
             {"id": "i-4", "node": None, "state": "running"}]
    assert obs.duplicated(insts) == {"0001": ["i-1", "i-2"]}
