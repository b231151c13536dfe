"""The deleted-node worker acts on a pass's nodes several at once.

Acting on a node is a few ZooKeeper round trips; one after another they
held a loaded launcher to fewer deletes a second than nodes were returned
(``nodepool/launcher/deleter.py``, Threads).  These tests take the
launcher's own worker out of the way and run passes of a second one by
hand, on 30 real nodes of a running launcher, real ZooKeeper.
"""

from __future__ import annotations

import collections
import logging
import threading

from kazoo.exceptions import ConnectionLoss

from nodepool.driver import fake
from nodepool.launcher.deleter import DeletedNodeWorker

from tests.functional.launcher.helpers import (
    fake_provider, fulfil_all, wait_for)

BURST = 30
TOGETHER = 4        # lock attempts that must be in flight at once


def _used_nodes(env):
    """A launcher whose deleter is stopped, and BURST of its nodes
    returned ``used``, every one of them ``used`` in its cache."""
    env.write_config([fake_provider(pools=[{
        "name": "main", "max-servers": BURST + 10,
        "labels": [{"name": "small", "cloud-image": "fake-image"}]}])])
    launcher = env.start_launcher()
    launcher.deleted_worker.stop()
    launcher.deleted_worker.join()
    rids = [env.zuul.submit(["small"]) for _ in range(BURST)]
    nodes = fulfil_all(env, rids)
    for rid in rids:
        env.zuul.accept(rid)
    env.zuul.release(nodes)

    def all_used():
        cached = {n.id: n.state for n in launcher.zk.iter_nodes(cached=True)}
        return all(cached.get(n) == "used" for n in nodes)
    wait_for(all_used, what="every node used in the launcher's cache")
    return launcher, nodes


def test_a_pass_locks_its_nodes_several_at_once_and_deletes_each_once(
        env, monkeypatch):
    launcher, nodes = _used_nodes(env)
    cloud = fake.cloud_for("fake-provider")
    instances = {env.zuul.get_node(n)["external_id"] for n in nodes}
    assert instances <= set(cloud.instances)
    # The first TOGETHER lock attempts wait for each other: one after
    # another, the first would wait alone and break the barrier.
    barrier = threading.Barrier(TOGETHER, timeout=15)
    locks = collections.Counter()
    threads = set()
    real_lock = launcher.zk.lock_node

    def lock_node(node, *a, **kw):
        locks[node.id] += 1
        threads.add(threading.current_thread().name)
        if sum(locks.values()) <= TOGETHER:
            barrier.wait()
        return real_lock(node, *a, **kw)
    monkeypatch.setattr(launcher.zk, "lock_node", lock_node)

    worker = DeletedNodeWorker(launcher)
    try:
        worker.run_once()
    finally:
        worker.stop()
    assert not barrier.broken
    assert set(locks) == set(nodes)
    assert set(locks.values()) == {1}
    assert all(t.startswith("DeletedNodeWorker-io") for t in threads), threads
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id)
    assert not instances & set(cloud.instances)


def test_zookeeper_trouble_stops_a_parallel_pass_with_one_warning(
        env, monkeypatch, caplog):
    launcher, nodes = _used_nodes(env)
    real_lock = launcher.zk.lock_node
    attempts = []

    def lost(node, *a, **kw):
        attempts.append(node.id)
        raise ConnectionLoss()
    monkeypatch.setattr(launcher.zk, "lock_node", lost)
    worker = DeletedNodeWorker(launcher)
    try:
        with caplog.at_level(logging.WARNING, logger="nodepool"):
            worker.run_once()
        stopped = [r for r in caplog.records
                   if "Node pass stopped" in r.getMessage()]
        assert len(stopped) == 1
        assert not [r for r in caplog.records if r.exc_info]
        # The pass stopped: not every node was tried, none was touched.
        assert 1 <= len(attempts) < BURST
        assert {env.zuul.get_node(n)["state"] for n in nodes} == {"used"}
        # The next pass, with ZooKeeper back, deletes them all.
        monkeypatch.setattr(launcher.zk, "lock_node", real_lock)
        worker.run_once()
    finally:
        worker.stop()
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id)
