"""Real ``nodepool-launcher`` processes on one ZooKeeper (behaviours 17, 19,
21, 43 and cli.md §2 signals).

Each launcher here is ``python -m nodepool.cmd.launcher -f -c CONFIG
--no-webapp`` in its own process and ZooKeeper session, with the in-memory
``fake`` driver; the test plays Zuul with raw kazoo (``env.zuul``).

Observers:
- every node's ``allocated_to`` is recorded from a data watch set when the
  node appears (a launched node is created already allocated), so a node
  handed to two requests, or a request given two nodes, shows up;
- a sampler reads each open request's lock directory: the lowest contender
  (the holder) and its ``ephemeralOwner`` (the launcher's session), and
  records that session while the request reads ``pending`` and the holder
  still exists afterwards.  A request pending under two sessions would
  mean two launchers held it at once.  (A second contender by itself is
  normal: a failed non-blocking acquire creates one for a moment.)

Where the test must wait for a killed launcher's session to expire, the
config sets ``zookeeper-timeout: 4.0`` (the server's minimum).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
import yaml
from kazoo.exceptions import NoNodeError

from tests.functional.launcher.helpers import fake_provider, wait_for

pytestmark = pytest.mark.functional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"
REQUEST_LOCKS = "/nodepool/requests-lock"
POOLS = "/nodepool/components/pool"
LAUNCHERS = "/nodepool/components/launcher"


# -- processes ---------------------------------------------------------------

class LauncherProcess:
    """One ``nodepool-launcher -f`` child with its output in a file."""

    def __init__(self, config_path: str, log_path: str,
                 entry=("-m", "nodepool.cmd.launcher")):
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("STATSD_")}
        env["PYTHONPATH"] = ROOT
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *entry, "-f",
                 "-c", config_path, "--no-webapp"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher still running after {timeout}s:"
                                 f"\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-size:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def spawn(tmp_path):
    started: list[LauncherProcess] = []

    def start(config_path: str) -> LauncherProcess:
        proc = LauncherProcess(config_path,
                               str(tmp_path / f"launcher{len(started)}.log"))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def children(client, path) -> list[str]:
    try:
        return client.get_children(path)
    except NoNodeError:
        return []


def pool_owners(client) -> dict[str, int]:
    """Pool component id → the session that registered it."""
    out = {}
    for name in children(client, POOLS):
        try:
            data, stat = client.get(f"{POOLS}/{name}")
        except NoNodeError:
            continue
        out[json.loads(data)["id"]] = stat.ephemeralOwner
    return out


def wait_pools(client, count: int, procs=(), timeout: float = 30.0):
    def ready():
        for proc in procs:
            if proc.proc.poll() is not None:
                raise AssertionError(f"launcher exited {proc.proc.returncode}"
                                     f":\n{proc.log_tail()}")
        return len(pool_owners(client)) == count
    wait_for(ready, timeout=timeout, what=f"{count} pool component(s)")


def write_config(env, **provider_extra) -> str:
    path = env.write_config([fake_provider(pools=[
        {"name": "main", "max-servers": 200,
         "labels": [{"name": "small", "cloud-image": "fake-image"}]}],
        **provider_extra)])
    with open(path) as f:
        data = yaml.safe_load(f)
    data["zookeeper-timeout"] = 4.0
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


# -- observers ---------------------------------------------------------------

class NodeWatch:
    """Every value of ``allocated_to`` each node ever showed."""

    def __init__(self, client):
        self.client = client
        self.allocs: dict[str, list[str]] = defaultdict(list)
        self.launcher: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        client.ensure_path(NODES)
        client.ChildrenWatch(NODES, self._children)

    def _children(self, names):
        for name in names:
            with self._lock:
                if name in self._watched:
                    continue
                self._watched.add(name)
            self.client.DataWatch(f"{NODES}/{name}",
                                  lambda d, s, e=None, n=name:
                                  self._data(n, d))

    def _data(self, name, data):
        if not data:
            return
        node = json.loads(data)
        with self._lock:
            self.states[name] = node.get("state")
            if node.get("launcher"):
                self.launcher[name] = node["launcher"]
            rid = node.get("allocated_to")
            if rid and (not self.allocs[name] or self.allocs[name][-1] != rid):
                self.allocs[name].append(rid)

    def by_request(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        with self._lock:
            for name, rids in self.allocs.items():
                for rid in rids:
                    out[rid].add(name)
        return out


class LockSampler:
    """Which sessions held each request's lock while it was ``pending``."""

    def __init__(self, client, request_ids):
        self.client = client
        self.open = set(request_ids)
        self.pending_holders: dict[str, set[int]] = defaultdict(set)
        self.samples = 0
        self.max_contenders = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def done(self, rid: str) -> None:
        self.open.discard(rid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set() and self.open:
            self._sample(list(self.open))

    @staticmethod
    def _get(future):
        try:
            return future.get(timeout=10)
        except NoNodeError:
            return None

    def _sample(self, ids):
        c = self.client
        kids = {rid: self._get(c.get_children_async(f"{REQUEST_LOCKS}/{rid}"))
                for rid in ids}
        holder = {}
        for rid, names in kids.items():
            if names:
                self.max_contenders = max(self.max_contenders, len(names))
                low = min(names, key=lambda n: n[-10:])
                holder[rid] = f"{REQUEST_LOCKS}/{rid}/{low}"
        owners = {rid: self._get(c.exists_async(path))
                  for rid, path in holder.items()}
        owners = {rid: st.ephemeralOwner for rid, st in owners.items() if st}
        datas = {rid: self._get(c.get_async(f"{REQUESTS}/{rid}"))
                 for rid in owners}
        still = {rid: self._get(c.exists_async(holder[rid]))
                 for rid in owners}
        for rid, owner in owners.items():
            data = datas[rid]
            if data is None or still[rid] is None:
                continue
            state = json.loads(data[0]).get("state")
            if state == "fulfilled":
                self.done(rid)       # nothing more to see: sample the rest
            elif state == "pending":
                # Held before and after the read: held while pending.
                self.pending_holders[rid].add(owner)
                self.samples += 1


def play_zuul(zuul, rids, sampler=None, timeout=60.0) -> dict[str, str]:
    """Wait for each request, take its node, use it; rid → node id."""
    got = {}
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=timeout)
        assert req["state"] == "fulfilled", (rid, req)
        assert len(req["nodes"]) == 1, req
        nodes = zuul.accept(rid)
        if sampler is not None:
            sampler.done(rid)
        zuul.set_in_use(nodes)
        zuul.release(nodes)
        got[rid] = nodes[0]
    return got


# -- behaviour 21: two launchers, one ZooKeeper ------------------------------

def test_two_launcher_processes_share_100_requests(env, spawn):
    # A create latency keeps each request pending long enough for the lock
    # sampler to see it (without one a request is pending for a few ms).
    # max-concurrency 30: neither launcher can take the whole burst in the
    # first second, however the two are scheduled on a loaded machine.
    config = write_config(env, **{"create-latency": 1.0,
                                  "max-concurrency": 30})
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    procs = [spawn(config), spawn(config)]
    wait_pools(client, 2, procs)
    sessions = set(pool_owners(client).values())
    assert len(sessions) == 2

    rids = [zuul.submit(["small"]) for _ in range(100)]
    sampler = LockSampler(client, rids)
    try:
        got = play_zuul(zuul, rids, sampler)
    finally:
        sampler.stop()

    # Every request got exactly one node, and it was only ever its own.
    by_request = watch.by_request()
    for rid, node_id in got.items():
        assert by_request[rid] == {node_id}, (rid, by_request[rid])
        assert watch.allocs[node_id] == [rid], (node_id,
                                                watch.allocs[node_id])
    assert len(set(got.values())) == 100
    # Mutual exclusion as seen on the lock directories.
    doubly = {r: s for r, s in sampler.pending_holders.items() if len(s) > 1}
    assert doubly == {}
    assert sampler.pending_holders.keys() <= set(rids)
    assert all(s <= sessions for s in sampler.pending_holders.values())
    # Not vacuous: the sampler did catch requests pending under a holder
    # (a few dozen of the 100 typically; they are pending for milliseconds).
    assert sampler.pending_holders, "the lock sampler saw nothing pending"
    # Both launchers did some of the work.
    workers = {watch.launcher[n] for n in got.values()}
    assert len(workers) == 2, workers
    assert workers == set(pool_owners(client))

    wait_for(lambda: children(client, NODES) == [], timeout=30,
             what="used nodes deleted")
    for proc in procs:
        proc.send(signal.SIGINT)
    for proc in procs:
        assert proc.wait(30) == 0, proc.log_tail()
    assert children(client, POOLS) == []
    assert children(client, LAUNCHERS) == []


# -- behaviours 17 and 19: SIGKILL mid-request, then a restart ----------------

def test_sigkill_mid_request_then_restart_recovers(env, spawn):
    config = write_config(env, **{"create-latency": 1.5})
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    proc = spawn(config)
    wait_pools(client, 1, [proc])
    rids = [zuul.submit(["small"]) for _ in range(8)]

    def in_flight():
        pending = [r for r in rids
                   if (zuul.get_request(r) or {}).get("state") == "pending"]
        building = [n for n, s in dict(watch.states).items()
                    if s == "building"]
        return len(pending) >= 4 and len(building) >= 4
    wait_for(in_flight, timeout=20, what="requests pending, nodes building")
    proc.send(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    building = {n for n, s in dict(watch.states).items() if s == "building"}
    pending = {r for r in rids if zuul.get_request(r)["state"] == "pending"}
    assert building and pending

    # Restart (in-process, so the cleanup interval can be short).
    env.start_launcher(cleanup_interval=0.5)
    got = play_zuul(zuul, rids)
    for rid, node_id in got.items():
        assert watch.allocs[node_id] == [rid]
    for node_id in building:                 # the dead launcher's launches
        zuul.wait_node_gone(node_id)

    def nothing_orphaned():
        nodes = zuul.nodes()
        return all(n["state"] == "ready" and not n["allocated_to"]
                   and not children(client, f"{NODES}/{i}/lock")
                   for i, n in nodes.items())
    wait_for(nothing_orphaned, timeout=30, what="no orphaned nodes")
    for node_id, node in zuul.nodes().items():
        assert node["state"] == "ready" and node["allocated_to"] is None


# -- cli.md §2: signals ------------------------------------------------------

def test_sigint_releases_requests_and_unregisters(env, spawn):
    config = write_config(env, **{"create-latency": 2.0})
    client, zuul = env.client, env.zuul
    proc = spawn(config)
    wait_pools(client, 1, [proc])
    assert len(children(client, LAUNCHERS)) == 1
    rids = [zuul.submit(["small"]) for _ in range(4)]
    wait_for(lambda: any(zuul.get_request(r)["state"] == "pending"
                         for r in rids), what="a request pending")

    proc.send(signal.SIGINT)
    assert proc.wait(30) == 0, proc.log_tail()
    assert children(client, POOLS) == []
    assert children(client, LAUNCHERS) == []
    states = {r: zuul.get_request(r)["state"] for r in rids}
    assert set(states.values()) <= {"requested", "fulfilled"}, states
    for rid in rids:
        assert not children(client, f"{REQUEST_LOCKS}/{rid}"), rid

    # Nothing was lost: a fresh launcher serves every request.
    write_config(env)
    env.start_launcher(cleanup_interval=0.5)
    play_zuul(zuul, rids)


def test_sigterm_exits_zero_promptly(env, spawn):
    config = write_config(env)
    client = env.client
    proc = spawn(config)
    wait_pools(client, 1, [proc])
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.log_tail()
    assert time.monotonic() - started < 5
    # The session was closed: its ephemeral components are gone at once.
    assert children(client, POOLS) == []
    assert children(client, LAUNCHERS) == []
