"""Bookkeeping of quarantined znodes (nodepool/zk/quarantine.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from nodepool.zk.quarantine import Quarantine, kind_of


def stat(mzxid):
    return SimpleNamespace(mzxid=mzxid)


def test_one_warning_and_one_count_per_znode_version(caplog):
    seen = []
    q = Quarantine(logging.getLogger("test.quarantine"))
    q.add_listener(seen.append)
    path = "/nodepool/nodes/0000000042"
    with caplog.at_level(logging.WARNING, "test.quarantine"):
        for _ in range(5):
            q.report(path, stat(7), "field 'state_time': expected a number")
        q.report(path, stat(8), "field 'type[0]': expected a string")
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping znode {path}: field 'state_time': expected a number",
        f"Skipping znode {path}: field 'type[0]': expected a string"]
    assert q.counts() == {"node": 2}
    assert [(e.kind, e.name, e.mzxid) for e in seen] == [
        ("node", "0000000042", 7), ("node", "0000000042", 8)]
    assert [e.mzxid for e in q.current("node")] == [8]


def test_release_and_prune_drop_current_entries():
    q = Quarantine(logging.getLogger("test.quarantine"))
    q.report("/nodepool/requests/100-0000000001", stat(1), "x")
    q.report("/nodepool/requests/100-0000000002", stat(2), "y")
    q.release("/nodepool/requests/100-0000000001")
    assert [e.name for e in q.current("request")] == ["100-0000000002"]
    q.prune(lambda e: False)
    assert q.current() == []
    assert q.counts() == {"request": 2}     # the counter never goes down


def test_a_failing_listener_does_not_stop_the_reader():
    q = Quarantine(logging.getLogger("test.quarantine"))
    q.add_listener(lambda e: 1 / 0)
    q.report("/nodepool/components/pool/x0000000001", stat(1), "x")
    assert q.counts() == {"component": 1}


def test_kind_of_paths():
    assert kind_of("/nodepool/nodes/1") == "node"
    assert kind_of("/nodepool/requests/100-1") == "request"
    assert kind_of("/nodepool/components/pool/h1") == "component"
    assert kind_of("/nodepool/images/u/builds/1") == "image"
    assert kind_of("/nodepool/offerings/a:b") == "offering"
    assert kind_of("/elsewhere") == "other"
