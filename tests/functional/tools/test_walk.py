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
    # Taken, launched for and fulfilled on one kind of I/O thread.
    io = claim["threads"]["PoolWorker.walk-main-io"]["calls"]
    for call in ("launcher.poolworker:PoolWorker._take",
                 "launcher.handler:RequestHandler._create_node",
                 "launcher.handler:RequestHandler._fulfil"):
        assert call in io
    assert not any("finish" in t for t in claim["threads"])
    # The delete goes through the deleter and the delete batcher's thread.
    assert "nodepool.launcher.deleter" in used["modules"]
    assert "nodepool.launcher.handler" not in used["modules"]
    assert any("delete" in t for t in used["threads"])
    # Its lock trusts the node cache: no re-read.
    deleter = used["threads"]["DeletedNodeWorker"]["calls"]
    assert "zk.node_store:NodeStore.lock_node" in deleter
    assert "zk.store:StoreBase._refresh_record" not in deleter


def test_a_walk_keeps_what_every_round_ran_and_no_idle_window_did():
    def row(thread, function, t=0.0):
        return [thread, "nodepool.m", function, t]
    before = [row("Loop", "tick")]
    after = [row("Loop", "tick"), row("Cleanup", "look_at_node")]
    first = [row("Loop", "tick"), row("Worker", "take", 0.1),
             row("Cleanup", "look_at_node"), row("io_3", "fulfil", 0.2),
             row("Stats", "gauge", 0.3)]
    second = [row("Worker", "take", 0.1), row("io_3", "fulfil", 0.2)]
    found = walk.walk_of([first, second], [before, after])
    assert list(found["threads"]) == ["Worker", "io_3"]
    assert found["functions"] == 2
    assert found["handoffs"] == 1
    # One round against the window before alone counts both bystanders.
    alone = walk.walk_of([first], [before])
    assert {"Cleanup", "Stats"} <= set(alone["threads"])


def test_a_round_that_recorded_nothing_is_an_error_not_an_empty_walk():
    import pytest
    round_ = [["Worker", "nodepool.m", "take", 0.1]]
    with pytest.raises(ValueError, match=r"round\(s\) \[1\]"):
        walk.walk_of([round_, []], [])
