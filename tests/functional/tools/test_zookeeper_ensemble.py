"""tools.zookeeper.ZooKeeperEnsemble: three real servers on loopback."""

from __future__ import annotations

import os

from kazoo.client import KazooClient

from tools.zookeeper import ZooKeeperEnsemble


def test_a_temporary_ensemble_replicates_and_cleans_up():
    with ZooKeeperEnsemble(size=3) as ensemble:
        workdir = ensemble.workdir
        modes = ensemble.modes()
        assert sorted(modes) == ["follower", "follower", "leader"], modes
        first, last = ensemble.servers[0], ensemble.servers[-1]
        writer = KazooClient(hosts=first.hosts)
        reader = KazooClient(hosts=last.hosts)
        writer.start(timeout=15)
        reader.start(timeout=15)
        try:
            writer.create("/ensemble-check", b"written on one member")
            reader.sync("/ensemble-check")
            data, _ = reader.get("/ensemble-check")
            assert data == b"written on one member"
        finally:
            writer.stop()
            reader.stop()
        assert os.path.isdir(workdir)
    assert not os.path.exists(workdir)
