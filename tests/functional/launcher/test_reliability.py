"""Issue 8 reliability fixes, each shown against a real ZooKeeper.

- ZooKeeper trouble (ConnectionLoss) while a request is being handled is
  retried, never turned into a decline, and leaves no request pending
  under our own lock (connections cut with a ``TcpGate`` during a burst);
- a SIGKILLed launcher's pending requests are taken again within seconds
  of its session expiring, not after the 60 s cleanup interval;
- an ``init`` node whose create reply was lost (unlocked, owned by no
  handler) is removed within seconds, while young ones and those of a live
  launcher are left alone.
"""

from __future__ import annotations

import logging
import signal
import time

import pytest
import yaml

from nodepool.launcher import cleanup as cleanup_mod
from nodepool.zk.models import Node, NodeState, PoolComponent
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.launcher.test_processes import (  # noqa: F401
    NodeWatch, play_zuul, spawn, wait_pools, write_config)
from tests.functional.launcher.test_zk_faults import FaultEnv
from tools.zookeeper import TcpGate, ZooKeeperServer

pytestmark = pytest.mark.functional

REQUESTS = "/nodepool/requests"
REQUEST_LOCKS = "/nodepool/requests-lock"
BURST, MAX_ROUNDS = 40, 10


class Counter(logging.Handler):
    """Counts the records whose message contains ``needle``."""

    def __init__(self, needle: str):
        super().__init__(logging.DEBUG)
        self.needle = needle
        self.count = 0

    def emit(self, record):
        if self.needle in record.getMessage():
            self.count += 1


@pytest.fixture
def counters():
    made = []

    def make(logger: str, needle: str) -> Counter:
        counter = Counter(needle)
        logging.getLogger(logger).addHandler(counter)
        made.append((logger, counter))
        return counter
    yield make
    for logger, counter in made:
        logging.getLogger(logger).removeHandler(counter)


def test_connection_loss_mid_burst_is_retried_not_declined(
        tmp_path, counters):
    """Cut the launcher's connection again and again while 40 requests are
    handled (the session survives each cut): every ConnectionLoss in a
    handler action is retried on a later pass; no request is declined or
    failed, none is left pending, and no lock is left behind."""
    from nodepool.driver import fake
    fake.CLOUDS.clear()
    server = ZooKeeperServer(str(tmp_path / "zk")).start()
    gate = TcpGate(server.port).start()
    env = FaultEnv(tmp_path, [gate.port], server.hosts, timeout=10.0)
    retried = counters("nodepool.launcher.request",
                       "ZooKeeper trouble while handling request")
    declined = counters("nodepool.launcher.request", "Declining request")
    # A cut during a node write is written again, never a failed attempt
    # (which would delete the instance and spend a launch retry).
    attempts_failed = counters("nodepool.launcher.node", "failed")
    try:
        env.write_config()
        with open(env.config_path) as f:
            data = yaml.safe_load(f)
        data["providers"] = [fake_provider(
            # Room for every burst the loop below may submit: a pool at
            # quota would hold the last ones until the end's release.
            pools=[{"name": "main", "max-servers": BURST * MAX_ROUNDS,
                    "labels": [{"name": "small",
                                "cloud-image": "fake-image"}]}],
            **{"create-latency": 0.3})]
        with open(env.config_path, "w") as f:
            yaml.safe_dump(data, f)
        launcher = env.start_launcher()
        session = launcher.client.session_id
        rounds = 0
        rids: list[str] = []
        # Bursts until a cut has hit a handler action at least once.
        while retried.count == 0 and rounds < MAX_ROUNDS:
            rounds += 1
            rids += [env.zuul.submit(["small"]) for _ in range(BURST)]
            for _ in range(8):
                gate.close()
                wait_for(lambda: not launcher.zk_ready(),
                         what="launcher cut off")
                gate.open()
                wait_for(launcher.zk_ready, timeout=30,
                         what="launcher reconnected")
                if retried.count:
                    break
        assert retried.count > 0, "no cut hit a handler action"
        finals = {r: env.zuul.wait_state(r, {"fulfilled", "failed"},
                                         timeout=60) for r in rids}
        states = {f["state"] for f in finals.values()}
        assert states == {"fulfilled"}, finals
        assert declined.count == 0
        assert attempts_failed.count == 0
        assert launcher.client.session_id == session
        for rid in rids:
            env.zuul.release(env.zuul.accept(rid))
        # No request lock of ours outlives its request's handling.
        wait_for(lambda: not any(
            env.client.get_children(f"{REQUEST_LOCKS}/{r}")
            for r in rids if env.client.exists(f"{REQUEST_LOCKS}/{r}")),
            what="no request locks left")
    finally:
        env.stop()
        gate.stop()
        server.stop()
        fake.CLOUDS.clear()


def test_sigkill_recovery_well_under_cleanup_interval(env, spawn):
    """A launcher process is SIGKILLed with requests pending; a launcher
    with the default 60 s cleanup interval takes them again within
    seconds of the dead session expiring (zookeeper-timeout 4 s)."""
    config = write_config(env, **{"create-latency": 1.5})
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    proc = spawn(config)
    wait_pools(client, 1, [proc])
    # The survivor runs first, so the dead launcher's component vanishing
    # is what it sees (as in a real fleet).
    survivor = env.start_launcher()          # cleanup_interval 60 s
    assert survivor.cleanup_worker.interval == 60
    # Keep the survivor out of the burst: only the victim serves it.
    for worker in survivor.pool_workers().values():
        worker.stop()
    for worker in survivor.pool_workers().values():
        worker.join()
    rids = [zuul.submit(["small"]) for _ in range(6)]
    wait_for(lambda: sum((zuul.get_request(r) or {}).get("state")
                         == "pending" for r in rids) >= 3,
             timeout=20, what="requests pending on the victim")
    proc.send(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    killed = time.monotonic()
    pending = [r for r in rids if zuul.get_request(r)["state"] == "pending"]
    assert pending
    # Reset to requested by the survivor's fast lost-request duty (its
    # pool workers are stopped, so nothing else touches them).
    wait_for(lambda: all(zuul.get_request(r)["state"] == "requested"
                         for r in pending),
             timeout=30, what="lost requests reset")
    took = time.monotonic() - killed
    assert took < 15, f"lost requests reset after {took:.1f}s"
    # And a working launcher serves them all.
    env.start_launcher()
    got = play_zuul(zuul, rids)
    for rid, node_id in got.items():
        assert watch.allocs[node_id] == [rid]


def _orphan(zk, launcher_id: str, age: float) -> str:
    """An unlocked ``init`` node as a create with a lost reply leaves it."""
    node = Node()
    node.state = NodeState.INIT
    node.type = ["small"]
    node.provider = "fake-provider"
    node.pool = "main"
    node.launcher = launcher_id
    node.allocated_to = "100-0000000999"
    node.set_state(NodeState.INIT)
    node.state_time = time.time() - age
    zk.store_node(node)
    return node.id


def test_lost_init_nodes_are_removed_soon(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()          # cleanup_interval 60 s
    zk = launcher.zk
    ours = next(iter(launcher.pool_workers().values())).id
    age = cleanup_mod.ORPHAN_INIT_AGE + 5
    # Another live launcher's pool worker: its own cleanup decides.
    other = PoolComponent()
    other.id = "other-host-PoolWorker.fake-provider-main-1"
    other.name, other.provider_name, other.state = \
        "main", "fake-provider", "running"
    other.supported_labels, other.priority = ["small"], 100
    zk.register_pool(other)
    wait_for(lambda: other.id in {c.id for c in launcher.pool_components()},
             what="the other pool component in the cache")
    theirs = _orphan(zk, other.id, age=age)
    young = _orphan(zk, ours, age=0)
    wait_for(lambda: zk.get_node(theirs, cached=True) is not None
             and zk.get_node(young, cached=True) is not None,
             what="the nodes to keep in the launcher's cache")
    # Created after those, so the pass that removes them saw those too.
    old = _orphan(zk, ours, age=age)
    dead = _orphan(zk, "gone-host-PoolWorker.fake-provider-main-0", age=age)
    started = time.monotonic()
    wait_for(lambda: env.zuul.get_node(old) is None
             and env.zuul.get_node(dead) is None, timeout=15,
             what="old orphan init nodes removed")
    assert time.monotonic() - started < 15
    for kept in (young, theirs):
        node = env.zuul.get_node(kept)
        assert node is not None and node["state"] == "init", kept
    zk.unregister_component(other)
