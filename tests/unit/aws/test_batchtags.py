"""The node ↔ instance mapping carried in a batch's shared tags."""

from __future__ import annotations

import pytest

from nodepool.driver.aws import batchtags


def test_round_trip_in_launch_order():
    ids = [f"{n:010d}" for n in range(1, 51)]
    tags = batchtags.encode("tok", ids)
    assert tags[batchtags.BATCH_ID] == "tok"
    assert all(len(v) <= 256 for v in tags.values())
    assert len(tags) > 2            # 50 ids do not fit one tag value
    assert batchtags.decode(tags) == ids


def test_node_of_each_launch_index():
    tags = batchtags.encode("tok", ["a", "b", "c"])
    assert [batchtags.node_id_of(tags, i) for i in range(4)] == \
        ["a", "b", "c", None]


def test_own_node_tag_wins():
    tags = batchtags.encode("tok", ["a", "b"])
    tags["nodepool_node_id"] = "z"
    assert batchtags.node_id_of(tags, 0) == "z"


def test_not_batched_or_no_index():
    assert batchtags.node_id_of({}, 0) is None
    assert batchtags.node_id_of(batchtags.encode("t", ["a"]), None) is None
    assert batchtags.decode({"other": "x"}) == []


def test_ids_that_can_not_be_encoded():
    with pytest.raises(ValueError):
        batchtags.encode("tok", ["a,b"])
