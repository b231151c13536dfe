"""The launcher's fake cloud forgets what a deleted instance left behind,
so a long run through it does not grow."""

from __future__ import annotations

from nodepool.driver.fake import FakeCloud


def test_tokens_and_history_stay_bounded_over_300_instances():
    cloud = FakeCloud()
    for i in range(300):
        iid = cloud.create({"nodepool_node_id": str(i)}, token=f"t-{i}")
        assert cloud.create({}, token=f"t-{i}") == iid   # idempotent
        assert cloud.delete_many([iid]) == [None]
    assert cloud.instances == {}
    assert cloud.tokens == {}
    # A repeated token after the delete makes a new instance.
    assert cloud.create({}, token="t-0") not in ("", None)
    cloud.delete_batches.extend([1] * 5000)
    assert len(cloud.delete_batches) <= 1000
