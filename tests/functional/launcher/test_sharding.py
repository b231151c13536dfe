"""Request sharding between launcher processes on one ZooKeeper.

Each launcher is ``python -m tools.zkops OPS.json -- -f -c CONFIG
--no-webapp``: ``nodepool-launcher`` with the in-memory ``fake`` driver,
counting at its client every attempt to take a request lock and those that
failed (``tools.zkops``).  The test plays Zuul with raw kazoo.

* a burst of 60 requests on three launchers: each request is locked about
  once, few lock attempts fail, every launcher serves a share, and no node
  is ever allocated to two requests (every ``allocated_to`` a node showed
  is recorded from a data watch);
* a launcher that is stopped (SIGSTOP: its pool stays registered, it takes
  nothing) keeps nothing stuck: the others take its requests after the
  grace, long before its session would expire;
* a pool that declines every request (``max-servers: 0``) hands its share
  over at once: the other launcher serves them without waiting a grace.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import yaml

from nodepool.launcher.sharding import GRACE
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.launcher.test_processes import (LauncherProcess,
                                                      NodeWatch, children,
                                                      pool_owners, wait_pools)

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"
REQUEST_LOCKS = "/nodepool/requests-lock"


class CountingLauncher(LauncherProcess):
    """One launcher process counting its request lock attempts."""

    def __init__(self, config_path: str, workdir, index: int):
        self.ops_path = str(workdir / f"zkops{index}.json")
        super().__init__(config_path, str(workdir / f"launcher{index}.log"),
                         entry=("-m", "tools.zkops", self.ops_path, "--"))

    def dump(self, after: float) -> dict:
        """Its counts (``tools.zkops``) from a dump written after
        ``after``."""
        def fresh():
            try:
                with open(self.ops_path) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                return None
            return data if data["time"] > after else None
        return wait_for(fresh, timeout=10, what="a fresh op dump")

    def locks(self, after: float) -> dict[str, int]:
        """The lock counts of a dump written after ``after``."""
        return self.dump(after)["locks"]

    def stop(self) -> None:
        """SIGTERM (the session closes at once), SIGKILL if that fails."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)   # if it was stopped
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture
def launchers(tmp_path):
    started: list[CountingLauncher] = []

    def start(config_path: str) -> CountingLauncher:
        started.append(CountingLauncher(config_path, tmp_path, len(started)))
        return started[-1]

    yield start
    for launcher in started:
        launcher.stop()


def write_config(env, name: str, max_servers: int = 200,
                 session_timeout: float = 10.0, **provider_extra) -> str:
    env.write_config([fake_provider(pools=[
        {"name": "main", "max-servers": max_servers,
         "labels": [{"name": "small", "cloud-image": "fake-image"}]}],
        **provider_extra)])
    with open(env.config_path) as f:
        data = yaml.safe_load(f)
    data["zookeeper-timeout"] = session_timeout
    path = str(env.tmp_path / f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def take(zuul, rid, timeout=60.0) -> tuple[str, dict]:
    """Wait for one request as Zuul does, take and use its node; returns
    the node id and the request as fulfilled."""
    req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=timeout)
    assert req["state"] == "fulfilled", (rid, req)
    assert len(req["nodes"]) == 1, req
    nodes = zuul.accept(rid)
    zuul.set_in_use(nodes)
    zuul.release(nodes)
    return nodes[0], req


def lock_totals(procs, after: float) -> tuple[int, int]:
    attempts = failed = 0
    for proc in procs:
        locks = proc.locks(after)
        attempts += locks.get("fresh", 0) + locks.get("recipe", 0)
        failed += (locks.get("fresh_failed", 0)
                   + locks.get("recipe_failed", 0))
    return attempts, failed


def test_three_launchers_share_a_burst_without_racing(env, launchers):
    config = write_config(env, "shared", **{"create-latency": 0.2})
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    # As after a launcher's first request: without the lock root every
    # first take fails once (NoNodeError) and makes it.
    client.ensure_path(REQUEST_LOCKS)
    procs = [launchers(config) for _ in range(3)]
    wait_pools(client, 3, procs)
    before = lock_totals(procs, time.time())

    rids = [zuul.submit(["small"]) for _ in range(60)]
    got = {rid: take(zuul, rid)[0] for rid in rids}

    # No node allocated twice, every request got its own node.
    assert len(set(got.values())) == len(rids)
    by_request = watch.by_request()
    for rid, node_id in got.items():
        assert by_request[rid] == {node_id}, (rid, by_request[rid])
        assert watch.allocs[node_id] == [rid], (node_id,
                                                watch.allocs[node_id])
    # Each request was locked about once; hardly any attempt failed
    # (racing for every lock, two of three attempts would).
    attempts, failed = (a - b for a, b in zip(
        lock_totals(procs, time.time()), before))
    assert attempts >= len(rids)
    assert failed <= 0.1 * len(rids), (attempts, failed)
    assert attempts <= 1.2 * len(rids), (attempts, failed)
    # Every launcher served a share (20 each expected).
    served = {}
    for node_id in got.values():
        served[watch.launcher[node_id]] = \
            served.get(watch.launcher[node_id], 0) + 1
    assert set(served) == set(pool_owners(client)), served
    assert min(served.values()) >= 5, served


def test_a_stopped_launcher_leaves_nothing_stuck(env, launchers):
    # A long session: the stopped launcher's pool stays registered for
    # the whole test, so only the grace can move its requests.
    config = write_config(env, "shared", session_timeout=60.0)
    client, zuul = env.client, env.zuul
    procs = [launchers(config) for _ in range(3)]
    wait_pools(client, 3, procs)
    stopped = procs[0]
    stopped.proc.send_signal(signal.SIGSTOP)
    owners = set(pool_owners(client))

    started = time.monotonic()
    rids = [zuul.submit(["small"]) for _ in range(30)]
    for rid in rids:
        take(zuul, rid, timeout=30)
    took = time.monotonic() - started
    # Its share (a third) waited a grace or two, not a session timeout.
    assert GRACE <= took < 40.0, took
    assert set(pool_owners(client)) == owners, "a pool left meanwhile"
    stopped.proc.send_signal(signal.SIGCONT)


def test_a_declining_pool_hands_over_at_once(env, launchers):
    serving = write_config(env, "serving")
    disabled = write_config(env, "disabled", max_servers=0)
    client, zuul = env.client, env.zuul
    procs = [launchers(serving), launchers(disabled)]
    wait_pools(client, 2, procs)
    submitted = {}
    for _ in range(30):
        submitted[zuul.submit(["small"])] = time.monotonic()
    waited, declined_by, served_by = {}, set(), set()
    for rid in submitted:
        req = zuul.wait_state(rid, {"fulfilled", "failed"})
        if req["declined_by"]:
            # An upper bound: the request may have been fulfilled before
            # this loop got to it.
            waited[rid] = time.monotonic() - submitted[rid]
            declined_by.add(tuple(req["declined_by"]))
        served_by.add(zuul.get_node(req["nodes"][0])["launcher"])
        take(zuul, rid)
    assert len(served_by) == 1, served_by
    [disabled_id] = set(pool_owners(client)) - served_by
    assert declined_by == {(disabled_id,)}
    # About half were the disabled pool's first; it declined them, and the
    # serving pool took them without waiting a grace.
    assert 3 <= len(waited) <= 27, waited
    assert min(waited.values()) < GRACE, waited
    wait_for(lambda: children(client, NODES) == [], timeout=30,
             what="used nodes deleted")
