"""Change tracking and merging of concurrent updates (zookeeper.md §11)."""

from nodepool.zk import Node, NodeRequest


def test_fresh_record_has_no_changes():
    request = NodeRequest.from_dict("100-0000000001", {"state": "requested"})
    assert request.changes() == ({}, set())


def test_changes_list_only_what_we_touched():
    request = NodeRequest.from_dict("100-0000000001", {"state": "requested"})
    request.declined_by.append("w1")  # in-place mutation is seen
    request.set_state("failed", now=9.0)
    changed, removed = request.changes()
    assert changed == {"declined_by": ["w1"], "state": "failed",
                       "state_time": 9.0}
    assert removed == set()


def test_merge_keeps_other_writer_changes_and_reapplies_ours():
    ours = NodeRequest.from_dict("100-0000000001",
                                 {"state": "requested", "span_info": 1})
    ours.set_state("pending", now=2.0)
    theirs = {"state": "requested", "relative_priority": 7,
              "span_info": 1, "new_key": "x"}
    ours.merge_onto(theirs)
    assert ours.state == "pending" and ours.state_time == 2.0
    assert ours.relative_priority == 7
    assert ours.extra == {"span_info": 1, "new_key": "x"}
    # Still pending relative to the fresh version.
    changed, _ = ours.changes()
    assert set(changed) == {"state", "state_time"}


def test_removed_unknown_key_stays_removed_after_merge():
    node = Node.from_dict("1", {"state": "ready", "tmp": 1})
    del node.extra["tmp"]
    node.merge_onto({"state": "ready", "tmp": 1, "comment": "hi"})
    assert "tmp" not in node.to_dict()
    assert node.comment == "hi"


def test_mark_clean_resets_tracking():
    node = Node(state="ready")
    assert node.changes()[0]  # never read: everything is new
    node.mark_clean()
    assert node.changes() == ({}, set())
