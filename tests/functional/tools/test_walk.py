"""tools.walk records the path of one request through a real launcher."""

from tools import walk


def test_walk_follows_a_request_and_its_node(tmp_path):
    result = walk.run(str(tmp_path))
    claim = result["claim_to_ready"]
    used = result["used_to_gone"]
    # The request's own modules are on its walk, the idle loops' work is not.
    for module in ("nodepool.launcher.handler", "nodepool.driver.fake",
                   "nodepool.driver.createpool"):
        assert module in claim["modules"]
    assert "PoolWorker.walk-main" in claim["threads"]
    assert claim["handoffs"] == len(claim["threads"]) - 1 >= 2
    # The delete goes through the deleter and the delete batcher's thread.
    assert "nodepool.launcher.deleter" in used["modules"]
    assert "nodepool.launcher.handler" not in used["modules"]
    assert any("delete" in t for t in used["threads"])
