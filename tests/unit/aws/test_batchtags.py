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


def test_every_instance_carries_the_anchor_from_creation():
    # upstream's leak rule reads only nodepool_node_id: the batch's first
    # node, so the batch is reaped once that node is gone
    tags = batchtags.encode("tok", ["a", "b", "c"])
    assert tags["nodepool_node_id"] == "a"
    with pytest.raises(ValueError):
        batchtags.encode("tok", [])


def test_precedence_of_tag_and_mapping():
    tags = batchtags.encode("tok", ["a", "b", "c"])
    # the anchor's id on a sibling: the mapping wins
    assert batchtags.node_id_of(tags, 1) == "b"
    assert batchtags.node_id_of(tags, 0) == "a"
    # the tagger's per-node id (not the anchor) wins over the mapping
    assert batchtags.node_id_of({**tags, "nodepool_node_id": "b"}, 1) == "b"
    assert batchtags.node_id_of({**tags, "nodepool_node_id": "z"}, 2) == "z"
    # the mapping cannot place it: no node, never the anchor's
    assert batchtags.node_id_of(tags, None) is None
    assert batchtags.node_id_of(tags, 7) is None
    # not batched (lone creates, upstream's instances): the tag alone
    assert batchtags.node_id_of({"nodepool_node_id": "q"}, 3) == "q"
    assert batchtags.node_id_of({"nodepool_node_id": "q"}, None) == "q"


def test_own_node_tag_wins():
    tags = batchtags.encode("tok", ["a", "b"])
    tags["nodepool_node_id"] = "z"
    assert batchtags.node_id_of(tags, 0) == "z"


def test_not_batched_or_no_index():
    assert batchtags.node_id_of({}, 0) is None
    old_style = batchtags.encode("t", ["a"])      # a batch before anchors
    del old_style["nodepool_node_id"]
    assert batchtags.node_id_of(old_style, None) is None
    assert batchtags.node_id_of(old_style, 0) == "a"
    assert batchtags.decode({"other": "x"}) == []


def test_ids_that_can_not_be_encoded():
    with pytest.raises(ValueError):
        batchtags.encode("tok", ["a,b"])
