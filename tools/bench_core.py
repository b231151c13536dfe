"""Benchmark of the launcher core with the zero-latency fake adapter.

Starts a real ZooKeeper (mutual TLS) and ``nodepool-launcher`` (a separate
process, so its CPU time and peak RSS can be read from /proc), warms both
up, then runs two phases of N single-node requests each, submitted as Zuul
would:

* **burst**: all N at once; requests/s = N ÷ seconds until the last is
  fulfilled (the launcher's capacity), and CPU per node;
* **paced**: N arriving at ``--rate`` per second (default 100, the
  target); p50/p99 request→fulfilled latency at that offered load.  (In
  the burst phase latency only measures queueing: the last request waits
  N ÷ throughput.)

Steady state, as in production where ZooKeeper and the launcher run for
weeks:

* **warm-up in rounds** of ``--warmup-round`` requests (default 300) until
  the ZooKeeper JVM's JIT compiler threads (``C1``/``C2 CompilerThread``,
  read per thread from /proc/<pid>/task) used less than 5 % of the JVM's
  CPU over the last two rounds (its work comes in bursts), at most
  ``--max-warmup-rounds`` (default 10; the output says when the cap was
  hit).  Each round prints requests/s, ZooKeeper CPU per request and the
  compiler's share; a measured phase in which the compiler still used 5 %
  or more is flagged.
* **the harness is Zuul**: when a request is fulfilled it locks the
  request's nodes (``/nodepool/nodes/<id>/lock``, kazoo's Lock recipe) and
  then deletes the request, as the spec's consumer protocol says (this is
  load on ZooKeeper and on these 2 cores, so it runs inside the measured
  phases);
* **nodes are returned** after every warm-up round and between the burst
  and the paced phase, never during a measured phase: as Zuul does when
  its jobs finish, each node is set ``in-use``, then ``used``, and
  unlocked; the bench waits until the launcher has
  deleted every one of them (znode gone), and until ZooKeeper's compiler
  threads are quiet (≤ 20 ms of CPU in 1 s) so that compilations the
  returns queued do not run in the next phase.  So each measured phase
  starts with the same small node population (the launcher's per-pass
  work grows with the number of nodes it holds).

Prints both phases against the targets of issue 3 (≥ 100 requests/s on 2
cores, ≤ 20 ms CPU per node, p99 < 2 s), plus the CPU the ZooKeeper
server (split into request handling -- every thread but the JIT compiler
threads, GC included -- and JIT compilation) and this process (playing
Zuul) spent per request: all three share the cores.

``--launchers N`` (N > 1) measures N launcher processes with the same
configuration on one ZooKeeper against a single one: the whole run (a
fresh ZooKeeper, warm-up, phases) once with one launcher, then with N,
every launcher counting its ZooKeeper operations and request lock attempts
(``tools.zkops``).  It prints, per phase, the operations of all launchers
per fulfilled request and their ratio to the single launcher's (target of
issue 18: ≤ 1.2), the failed request lock attempts per request (≤ 0.1)
and every request lock attempt, the reads per request by subtree and by
reading thread (which of a launcher's loops reads what the others
write), and checks that no node was allocated
twice: each node goes to one request only, and the node read after Zuul
locked it names that request.  Figures for CPU and latency are the sums
(CPU) and the whole (latency) of all N launchers.

    python -m tools.bench_core [--requests 1000] [--rate 100]
        [--warmup-round 300] [--max-warmup-rounds 10] [--launchers N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tools.zookeeper import ZooKeeperServer

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


COMPILER_PREFIXES = ("C1 Compiler", "C2 Compiler")
JIT_DONE_SHARE = 0.05   # warm-up ends when the compiler used less than this
QUIET_ROUNDS = 2        # ... in the last this many rounds together (JIT
                        # work comes in bursts: one quiet round proves
                        # little; CPU is read in 10 ms ticks)


def thread_cpu_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (thread name, user+system clock ticks)} of a process's live
    threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue   # the thread has just exited
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 1:].split()
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


class JitMeter:
    """CPU of a JVM's JIT compiler threads over an interval.

    The JVM starts and retires compiler threads as needed (Java 17's
    dynamic compiler threads), and a retired thread's CPU vanishes from
    /proc/<pid>/task, so the threads are sampled every ``interval`` s and
    each one counts with the last value seen; a thread born during the
    interval counts from zero.  At most the last ``interval`` of a thread
    that exits is lost (it was idle before it was retired)."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid = pid
        self.interval = interval
        self.start_ticks: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for tid, (name, ticks) in thread_cpu_ticks(self.pid).items():
            if name.startswith(COMPILER_PREFIXES):
                self.last[tid] = max(ticks, self.last.get(tid, 0))

    def start(self) -> "JitMeter":
        self._sample()
        self.start_ticks = dict(self.last)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="JitMeter")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> float:
        """Compiler CPU seconds since start()."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(t - self.start_ticks.get(tid, 0)
                   for tid, t in self.last.items()) / CLK_TCK


def proc_peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_config(path: str, zk: ZooKeeperServer, requests: int,
                 tls: bool = True) -> None:
    data = {
        "zookeeper-servers": [{"host": "127.0.0.1",
                               "port": zk.secure_port if tls else zk.port}],
        **({"zookeeper-tls": {"cert": zk.certs.client_cert,
                              "key": zk.certs.client_key, "ca": zk.certs.ca}}
           if tls else {}),
        "labels": [{"name": "bench"}],
        "providers": [{
            "name": "bench", "driver": "fake",
            "cloud-images": [{"name": "img", "username": "zuul"}],
            "pools": [{"name": "main", "max-servers": requests * 2,
                       "labels": [{"name": "bench", "cloud-image": "img"}]}],
        }],
    }
    with open(path, "w") as f:
        yaml.safe_dump(data, f)


class Collector:
    """Watches every request and records when it becomes fulfilled; then,
    as Zuul does (the spec's consumer protocol), locks its nodes and
    deletes the request (on ``ZUUL_THREADS`` threads, off kazoo's callback
    thread).  The node locks are kept until ``return_nodes``."""

    ZUUL_THREADS = 4

    def __init__(self, client: KazooClient, total: int,
                 verify: bool = False):
        self.client = client
        self.total = total
        self.verify = verify      # read each locked node's allocated_to
        self.misallocated: list[str] = []
        self.submitted: dict[str, float] = {}
        self.fulfilled: dict[str, float] = {}
        self.nodes: dict[str, list[str]] = {}   # request id -> node ids
        self.node_locks: dict[str, object] = {}  # node id -> held Lock
        self.failed: set[str] = set()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self._zuul = concurrent.futures.ThreadPoolExecutor(
            self.ZUUL_THREADS, thread_name_prefix="zuul")
        self._taking: list = []

    def _take_nodes(self, rid: str, node_ids: list[str]) -> None:
        for nid in node_ids:
            lock = self.client.Lock(f"/nodepool/nodes/{nid}/lock",
                                    "bench-zuul")
            if not lock.acquire(timeout=30):
                raise RuntimeError(f"node {nid} of {rid}: lock not "
                                   "obtained in 30 s")
            with self.lock:
                self.node_locks[nid] = lock
            if self.verify:
                data, _ = self.client.get(f"/nodepool/nodes/{nid}")
                owner = json.loads(data).get("allocated_to")
                if owner != rid:
                    with self.lock:
                        self.misallocated.append(
                            f"node {nid} of {rid} is allocated to {owner}")
        self.client.delete(f"/nodepool/requests/{rid}")

    def wait_taken(self) -> None:
        """Wait until the nodes of every fulfilled request are locked and
        the requests deleted; raises what went wrong."""
        for future in list(self._taking):
            future.result()
        self._zuul.shutdown()

    def submit(self, n: int, rate: float | None = None) -> None:
        """Create ``n`` requests: all at once, or ``rate`` per second
        (open loop: on schedule whatever the launcher does)."""
        results: list = []
        registered = 0
        start = time.monotonic()
        for i in range(n):
            if rate:
                due = start + i / rate
                while (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)   # the arrival schedule itself
            now = time.time()
            body = {"state": "requested", "state_time": now,
                    "node_types": ["bench"], "nodes": [], "declined_by": [],
                    "reuse": False, "requestor": "bench",
                    "created_time": now}
            res = self.client.create_async(
                "/nodepool/requests/200-", json.dumps(body).encode(),
                sequence=True)
            results.append((time.monotonic(), res))
            if rate:
                # Watch what has been created so far, between arrivals.
                while (registered < len(results)
                       and results[registered][1].ready()):
                    self._watch_created(*results[registered])
                    registered += 1
        for t0, res in results[registered:]:
            self._watch_created(t0, res)

    def _watch_created(self, t0: float, res) -> None:
        rid = res.get().rsplit("/", 1)[1]
        with self.lock:
            self.submitted[rid] = t0
        self.client.DataWatch(f"/nodepool/requests/{rid}",
                              self._make_watch(rid))

    def _make_watch(self, rid: str):
        def watch(data, stat):
            if data is None:
                return False
            body = json.loads(data)
            state = body.get("state")
            if state in ("fulfilled", "failed"):
                with self.lock:
                    if state == "fulfilled":
                        self.fulfilled.setdefault(rid, time.monotonic())
                        self.nodes[rid] = list(body.get("nodes") or [])
                    else:
                        self.failed.add(rid)
                    if len(self.fulfilled) + len(self.failed) >= self.total:
                        self.done.set()
                # As Zuul does: lock the nodes, then delete the request
                # (the nodes stay locked and allocated until
                # return_nodes() gives them back between phases).
                if state == "fulfilled":
                    self._taking.append(self._zuul.submit(
                        self._take_nodes, rid,
                        list(body.get("nodes") or [])))
                else:
                    self.client.delete_async(f"/nodepool/requests/{rid}")
                return False
            return True
        return watch


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def read_dump(path: str, after: float) -> dict:
    """One launcher's counts (``tools.zkops``) from a dump written after
    ``after``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                data = json.load(f)
            if data["time"] > after:
                return data
        except (OSError, ValueError):
            pass
        time.sleep(0.1)   # the launcher rewrites it every 0.5 s
    raise RuntimeError(f"no fresh op counts in {path}")


def read_counts(paths: list[str], after: float) -> dict[str, dict]:
    """{"ops": ..., "locks": ...} summed over the launchers' dumps."""
    out: dict[str, dict] = {"ops": {}, "locks": {}, "reads": {},
                            "reads_by_thread": {}}
    for path in paths:
        data = read_dump(path, after)
        for kind, total in out.items():
            for k, v in data.get(kind, {}).items():
                total[k] = total.get(k, 0) + v
    return out


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after
            if after[k] - before.get(k, 0)}


def allocated_twice(nodes_by_request: dict[str, list[str]]) -> list[str]:
    """Nodes that more than one fulfilled request lists."""
    seen: dict[str, str] = {}
    twice = []
    for rid, nids in nodes_by_request.items():
        for nid in nids:
            if nid in seen:
                twice.append(f"node {nid} in {seen[nid]} and {rid}")
            seen[nid] = rid
    return twice


def run_phase(client, n: int, rate: float | None, launchers: list, zk,
              ops_files: list[str] | None, quiet: bool = False,
              verify: bool = False) -> dict:
    """Submit ``n`` requests (all at once, or ``rate`` per second), wait
    for them, and measure."""
    cpu0 = sum(proc_cpu_seconds(p.pid) for p in launchers)
    zk_cpu0 = proc_cpu_seconds(zk.process.pid)
    own_cpu0 = time.process_time()
    counts0 = read_counts(ops_files, time.time()) if ops_files else {}
    jit = JitMeter(zk.process.pid).start()
    coll = Collector(client, n, verify)
    t0 = time.monotonic()
    coll.submit(n, rate)
    last = 0
    while not coll.done.wait(2.0):
        done = len(coll.fulfilled)
        if not quiet:
            print(f"  {done}/{n} fulfilled ({time.monotonic() - t0:.1f}s)",
                  flush=True)
        if done == last and time.monotonic() - t0 > 600:
            raise RuntimeError("no progress")
        last = done
    coll.wait_taken()        # Zuul's node locks are part of the load
    elapsed = max(coll.fulfilled.values()) - t0
    got = max(1, len(coll.fulfilled))
    cpu = sum(proc_cpu_seconds(p.pid) for p in launchers) - cpu0
    zk_cpu = proc_cpu_seconds(zk.process.pid) - zk_cpu0
    jit_cpu = min(jit.stop(), zk_cpu)
    own_cpu = time.process_time() - own_cpu0
    lat = [coll.fulfilled[r] - coll.submitted[r] for r in coll.fulfilled]
    ops = request_locks = reads = by_thread = {}
    if ops_files:
        counts1 = read_counts(ops_files, time.time())
        ops = delta(counts1["ops"], counts0["ops"])
        request_locks = delta(counts1["locks"], counts0["locks"])
        reads = delta(counts1["reads"], counts0["reads"])
        by_thread = delta(counts1["reads_by_thread"],
                          counts0["reads_by_thread"])
    with coll.lock:
        nodes = [nid for ids in coll.nodes.values() for nid in ids]
        locks = dict(coll.node_locks)
        twice = allocated_twice(coll.nodes) + coll.misallocated
    return {
        "ops": ops, "request_locks": request_locks, "reads": reads,
        "reads_by_thread": by_thread,
        "twice": twice,
        "requests": n, "fulfilled": len(coll.fulfilled),
        "failed": len(coll.failed), "seconds": elapsed,
        "requests_per_s": len(coll.fulfilled) / elapsed,
        "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
        "cpu_ms_per_node": 1000 * cpu / got,
        "zk_cpu_ms": 1000 * zk_cpu / got,
        "zk_jit_ms": 1000 * jit_cpu / got,
        "zk_handling_ms": 1000 * (zk_cpu - jit_cpu) / got,
        "jit_share": jit_cpu / zk_cpu if zk_cpu > 0 else 0.0,
        "zuul_cpu_ms": 1000 * own_cpu / got,
        "nodes": nodes, "locks": locks,
        "timeline": sorted((round(coll.submitted[r] - t0, 4),
                            round(coll.fulfilled[r] - coll.submitted[r], 4))
                           for r in coll.fulfilled),
    }


def return_node(client: KazooClient, node_id: str, lock=None,
                timeout: float = 30.0) -> None:
    """Give one node back as Zuul does when its job is done: with its lock
    (taken now unless ``lock`` is the one already held), set it ``in-use``
    (job start), then ``used`` (job done), unlock."""
    path = f"/nodepool/nodes/{node_id}"
    if client.exists(path) is None:
        # Checked first: a lock attempt would re-create the znode empty.
        raise NoNodeError(path)
    if lock is None:
        lock = client.Lock(f"{path}/lock", "bench")
        if not lock.acquire(timeout=timeout):
            raise RuntimeError(f"node {node_id}: lock not obtained in "
                               f"{timeout:g}s")
    try:
        for state in ("in-use", "used"):
            data, stat = client.get(path)
            node = json.loads(data)
            node["state"] = state
            node["state_time"] = time.time()
            # The version check: nobody else may write a node we hold.
            client.set(path, json.dumps(node).encode(), version=stat.version)
    finally:
        lock.release()


def return_nodes(client: KazooClient, node_ids: list[str],
                 timeout: float = 120.0,
                 locks: dict | None = None) -> tuple[float, float]:
    """Return ``node_ids`` (``return_node``), then wait until the launcher
    has deleted every one of them.  Returns the seconds until all were
    returned and until all were deleted."""
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = {pool.submit(return_node, client, nid,
                               (locks or {}).get(nid)): nid
                   for nid in node_ids}
        for fut in concurrent.futures.as_completed(futures):
            try:
                fut.result()
            except NoNodeError:
                raise RuntimeError(f"node {futures[fut]} vanished before it "
                                   "was returned (the launcher deleted a "
                                   "node allocated to the bench)")
    returned = time.monotonic() - t0
    pending = set(node_ids)
    deadline = time.monotonic() + timeout
    while True:
        pending &= set(client.get_children("/nodepool/nodes"))
        if not pending:
            return returned, time.monotonic() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(pending)} of {len(node_ids)} returned nodes not "
                f"deleted by the launcher within {timeout:g}s (e.g. "
                f"{sorted(pending)[:5]})")
        time.sleep(0.2)   # poll interval of the deadline loop


def wait_jit_quiet(pid: int, window: float = 1.0, max_ms: float = 20.0,
                   timeout: float = 30.0) -> tuple[float, bool]:
    """Wait until a JVM's JIT compiler threads used at most ``max_ms`` of
    CPU in the last ``window`` seconds (compilations queued by the node
    returns then no longer spill into the next measured phase).  Returns
    the seconds waited and whether it went quiet within ``timeout``."""
    t0 = time.monotonic()
    while True:
        meter = JitMeter(pid, interval=window / 4).start()
        # The window itself: the meter samples in its own thread.
        time.sleep(window)
        busy_ms = 1000 * meter.stop()
        if busy_ms <= max_ms:
            return time.monotonic() - t0, True
        if time.monotonic() - t0 > timeout:
            return time.monotonic() - t0, False


def give_back(client, zk, phase: dict, label: str) -> None:
    """Return a phase's nodes between measured phases, and let ZooKeeper's
    JIT compiler finish what the returns made it compile."""
    n = len(phase["nodes"])
    zk_cpu0 = proc_cpu_seconds(zk.process.pid)
    jit = JitMeter(zk.process.pid).start()
    returned, deleted = return_nodes(client, phase["nodes"],
                                     locks=phase.get("locks"))
    jit_cpu = jit.stop()
    zk_cpu = proc_cpu_seconds(zk.process.pid) - zk_cpu0
    waited, quiet = wait_jit_quiet(zk.process.pid)
    print(f"  returned {label}'s {n} nodes as used in {returned:.1f}s, all "
          f"deleted by the launcher after {deleted:.1f}s (ZooKeeper CPU "
          f"{zk_cpu:.2f}s, {jit_cpu:.2f}s of it JIT compiler); JIT "
          + (f"quiet after {waited:.1f}s" if quiet else
             f"still compiling after {waited:.1f}s, going on"), flush=True)


def warm_up(client, launchers, zk, round_size: int,
            max_rounds: int) -> dict:
    """Rounds of ``round_size`` requests (nodes returned after each) until
    ZooKeeper's JIT compiler used < JIT_DONE_SHARE of its CPU over the last
    QUIET_ROUNDS rounds, or ``max_rounds``."""
    print(f"warming up in rounds of {round_size} requests until ZooKeeper's "
          f"JIT compiler uses < {JIT_DONE_SHARE:.0%} of its CPU over the last "
          f"{QUIET_ROUNDS} rounds (at most {max_rounds} rounds) ...",
          flush=True)
    rounds: list[dict] = []
    share = 0.0
    for i in range(1, max_rounds + 1):
        ph = run_phase(client, round_size, None, launchers, zk, None,
                       quiet=True)
        print(f"  round {i}: {ph['fulfilled']} requests, "
              f"{ph['requests_per_s']:.1f} requests/s, ZooKeeper CPU "
              f"{ph['zk_cpu_ms']:.1f} ms/request "
              f"({ph['zk_jit_ms']:.1f} JIT compiler), compiler share "
              f"{ph['jit_share']:.1%}", flush=True)
        give_back(client, zk, ph, f"round {i}")
        rounds.append(ph)
        last = rounds[-QUIET_ROUNDS:]
        zk_ms = sum(r["zk_cpu_ms"] * r["fulfilled"] for r in last)
        jit_ms = sum(r["zk_jit_ms"] * r["fulfilled"] for r in last)
        share = jit_ms / zk_ms if zk_ms > 0 else 0.0
        if len(rounds) >= QUIET_ROUNDS and share < JIT_DONE_SHARE:
            print(f"warm-up done after {i} rounds (compiler share "
                  f"{share:.1%} over the last {QUIET_ROUNDS})", flush=True)
            return {"rounds": i, "capped": False, "jit_share": share}
    print(f"WARNING: warm-up stopped at the cap of {max_rounds} rounds; "
          f"ZooKeeper's JIT compiler still used {share:.1%} of its CPU "
          f"over the last {min(QUIET_ROUNDS, len(rounds))} round(s) (the "
          "figures below may include compilation)", flush=True)
    return {"rounds": max_rounds, "capped": True, "jit_share": share}


def start_launchers(client, cfg: str, workdir: str, count: int,
                    count_ops: bool) -> tuple[list, list[str]]:
    """``count`` launcher processes on ``cfg`` and their op dumps; returns
    once each has registered its pool (the launchers are serving)."""
    procs, ops_files = [], []
    try:
        for i in range(count):
            suffix = f"-{i}" if count > 1 else ""
            ops_file = os.path.join(workdir, f"zkops{suffix}.json")
            entry = (["-m", "tools.zkops", ops_file, "--"] if count_ops
                     else ["-m", "nodepool.cmd.launcher"])
            with open(os.path.join(workdir, f"launcher{suffix}.log"),
                      "w") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, *entry, "-f", "-c", cfg, "--no-webapp"],
                    stdout=log, stderr=subprocess.STDOUT))
            ops_files.append(ops_file)
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool") and len(
                client.get_children("/nodepool/components/pool")) >= count):
            if time.monotonic() > deadline or any(
                    p.poll() is not None for p in procs):
                raise RuntimeError("launcher did not start; see "
                                   f"{workdir}/launcher*.log")
            time.sleep(0.1)   # poll interval of the start-up deadline
    except BaseException:
        stop_launchers(procs)
        raise
    return procs, ops_files


def stop_launchers(procs: list) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def run(requests: int, workdir: str, tls: bool = True,
        count_ops: bool = False, rate: float = 100.0,
        warmup_round: int = 300, max_warmup_rounds: int = 10,
        launchers: int = 1, verify: bool = False) -> dict:
    zk = ZooKeeperServer(os.path.join(workdir, "zk"), tls=True,
                         fast_start=False, heap="512m").start()
    procs: list = []
    client = None
    try:
        cfg = os.path.join(workdir, "nodepool.yaml")
        # Nodes are returned between phases: at most one phase's nodes
        # (plus a round's in deletion) exist at a time.
        write_config(cfg, zk, 2 * requests + warmup_round, tls)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=15)
        client.ensure_path("/nodepool/requests")
        procs, ops_files = start_launchers(client, cfg, workdir, launchers,
                                           count_ops)
        counted = ops_files if count_ops else None
        warmup = None
        if warmup_round and max_warmup_rounds:
            warmup = warm_up(client, procs, zk, warmup_round,
                             max_warmup_rounds)
        print(f"burst: {requests} requests at once ...", flush=True)
        burst = run_phase(client, requests, None, procs, zk, counted,
                          verify=verify)
        paced = None
        if rate:
            give_back(client, zk, burst, "the burst")
            print(f"paced: {requests} requests at {rate:g}/s ...",
                  flush=True)
            paced = run_phase(client, requests, rate, procs, zk,
                              counted if verify else None,
                              verify=verify)
        return {"burst": burst, "paced": paced, "rate": rate,
                "warmup": warmup, "launchers": launchers,
                "peak_rss_mb": max(proc_peak_rss_mb(p.pid) for p in procs)}
    finally:
        stop_launchers(procs)
        if client is not None:
            client.stop()
            client.close()
        zk.stop()


def write_timeline(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump({phase: result[phase]["timeline"]
                   for phase in ("burst", "paced") if result[phase]}, f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--plain", action="store_true",
                   help="connect without TLS (default: mutual TLS)")
    p.add_argument("--count-ops", action="store_true",
                   help="count the launcher's ZooKeeper operations by type "
                   "(tools.zkops) and print them per request")
    p.add_argument("--rate", type=float, default=100.0,
                   help="arrival rate of the paced phase, requests/s "
                   "(default %(default)s; 0 skips the phase)")
    p.add_argument("--warmup-round", type=int, default=300,
                   help="requests per warm-up round (default %(default)s; "
                   "0 skips the warm-up)")
    p.add_argument("--max-warmup-rounds", type=int, default=10,
                   help="warm-up rounds at most: rounds go on until "
                   "ZooKeeper's JIT compiler threads used < 5%% of its CPU "
                   "over the last two rounds (default %(default)s)")
    p.add_argument("--workdir", help="keep the launcher's and ZooKeeper's "
                   "logs here (default: a temporary directory)")
    p.add_argument("--timeline", metavar="FILE",
                   help="write each phase's requests as [submitted at (s "
                   "into the phase), request->fulfilled (s)] to FILE as "
                   "JSON: when the slow ones arrived (one launcher only)")
    p.add_argument("--launchers", type=int, default=1,
                   help="N > 1: run once with one launcher, then with N "
                   "launcher processes on one ZooKeeper, and compare their "
                   "ZooKeeper operations and request lock attempts per "
                   "request (implies --count-ops)")
    args = p.parse_args(argv)
    if args.launchers < 1:
        p.error("--launchers must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-core-") as d:
        if args.workdir:
            os.makedirs(args.workdir, exist_ok=True)
            d = args.workdir
        kw = dict(tls=not args.plain, rate=args.rate,
                  warmup_round=args.warmup_round,
                  max_warmup_rounds=args.max_warmup_rounds)
        if args.launchers == 1:
            result = run(args.requests, d, count_ops=args.count_ops, **kw)
            if args.timeline:
                write_timeline(args.timeline, result)
            return 0 if report(result) else 1
        runs = []
        for count in (1, args.launchers):
            print(f"=== {count} launcher(s) ===", flush=True)
            workdir = os.path.join(d, f"launchers-{count}")
            os.makedirs(workdir, exist_ok=True)
            runs.append(run(args.requests, workdir, count_ops=True,
                            launchers=count, verify=True, **kw))
    ok = True
    for r in runs:
        print(f"\n=== {r['launchers']} launcher(s) ===")
        ok &= report(r)
    return 0 if compare(*runs) and ok else 1


OPS_RATIO_TARGET = 1.2      # issue 18: N launchers vs one, per request
FAILED_LOCKS_TARGET = 0.1   # failed request lock attempts per request


def ops_per_request(ph: dict) -> float:
    return sum(ph["ops"].values()) / max(1, ph["fulfilled"])


def lock_attempts(ph: dict, key: str) -> int:
    """Request lock attempts of a phase: ``all`` or only the ``failed``
    ones (the one-transaction take and kazoo's recipe, tools.zkops)."""
    locks = ph["request_locks"]
    if key == "failed":
        return locks.get("fresh_failed", 0) + locks.get("recipe_failed", 0)
    return locks.get("fresh", 0) + locks.get("recipe", 0)


def compare(one: dict, many: dict) -> bool:
    """The N-launcher run against the single launcher's; False when a
    node was allocated twice."""
    n = many["launchers"]
    print(f"\n=== {n} launchers against one ===")
    print(f"{'metric':<52}{'1':>8}{n:>8}  {'target':>8}  ratio")
    ok = True
    for label in ("burst", "paced"):
        a, b = one[label], many[label]
        if not (a and b and a["ops"] and b["ops"]):
            continue
        ra, rb = ops_per_request(a), ops_per_request(b)
        print(f"{label + ': ZooKeeper operations per request':<52}"
              f"{ra:>8.2f}{rb:>8.2f}  {'<=' + str(OPS_RATIO_TARGET):>8}  "
              f"{rb / ra:.2f}x")
        for key, what in (("failed", "failed request lock attempts"),
                          ("all", "request lock attempts")):
            fa, fb = (lock_attempts(ph, key) / max(1, ph["fulfilled"])
                      for ph in (a, b))
            target = (f"<={FAILED_LOCKS_TARGET}" if key == "failed"
                      else "-")
            print(f"{label + ': ' + what + ' per request':<52}"
                  f"{fa:>8.3f}{fb:>8.3f}  {target:>8}")
        for count, ph in ((1, a), (n, b)):
            reasons = {k: v
                       for k, v in ph["request_locks"].items() if ":" in k}
            if reasons:
                # NoNodeError: the lock root did not exist yet (the first
                # takes on a new ZooKeeper), not two launchers racing.
                print(f"{label}, {count} launcher(s): failed lock attempts "
                      "by reason: " + ", ".join(
                          f"{k} {v}" for k, v in sorted(reasons.items())))
        for tree in ("requests", "nodes", "other"):
            fa, fb = (ph["reads"].get(tree, 0) / max(1, ph["fulfilled"])
                      for ph in (a, b))
            what = f"{label}: reads of {tree} per request"
            print(f"{what:<52}{fa:>8.2f}{fb:>8.2f}  {'-':>8}")
        for count, ph in ((1, a), (n, b)):
            per = max(1, ph["fulfilled"])
            shown = [f"{k} {v / per:.2f}" for k, v in sorted(
                ph["reads_by_thread"].items(), key=lambda kv: -kv[1])
                if v / per >= 0.01]
            if shown:
                print(f"{label}, {count} launcher(s): reads per request by "
                      "subtree and thread: " + ", ".join(shown))
        for ph, count in ((a, 1), (b, n)):
            if ph["twice"]:
                ok = False
                print(f"{label}, {count} launcher(s): {len(ph['twice'])} "
                      f"node(s) allocated twice, e.g. {ph['twice'][:3]}")
    print("no node allocated twice" if ok else "NODES ALLOCATED TWICE")
    return ok


def report(r: dict) -> bool:
    """Print one run's table; False unless every request was fulfilled."""
    burst, paced = r["burst"], r["paced"]
    print()
    print(f"{'metric':<44}{'value':>10}  {'target':>8}  ratio")
    rows = [("burst: requests/s", burst["requests_per_s"], 100, True),
            ("burst: launcher CPU per node (ms)", burst["cpu_ms_per_node"],
             20, False),
            ("burst: p50 / p99 request->fulfilled (s)",
             (burst["p50_s"], burst["p99_s"]), None, False)]
    if paced:
        rows += [
            (f"paced {r['rate']:g}/s: achieved requests/s",
             paced["requests_per_s"], None, True),
            (f"paced {r['rate']:g}/s: p50 request->fulfilled (s)",
             paced["p50_s"], None, False),
            (f"paced {r['rate']:g}/s: p99 request->fulfilled (s)",
             paced["p99_s"], 2.0, False),
            (f"paced {r['rate']:g}/s: launcher CPU per node (ms)",
             paced["cpu_ms_per_node"], 20, False)]
    rows.append(("launcher peak RSS (MiB)", r["peak_rss_mb"], None, False))
    for name, value, target, higher in rows:
        ratio = ""
        if target:
            ratio = f"{(value / target) if higher else (target / value):.2f}x"
        tgt = f"{'>=' if higher else '<='}{target}" if target else "-"
        shown = (" / ".join(f"{v:.2f}" for v in value)
                 if isinstance(value, tuple) else f"{value:.3f}")
        print(f"{name:<44}{shown:>10}  {tgt:>8}  {ratio}")
    for label, ph in (("burst", burst), ("paced", paced)):
        if ph:
            if ph["jit_share"] >= JIT_DONE_SHARE:
                print(f"WARNING: {label}: ZooKeeper's JIT compiler used "
                      f"{ph['jit_share']:.0%} of its CPU: not at steady "
                      "state (its figures include compilation)")
            print(f"{label}: other CPU per request: ZooKeeper server "
                  f"{ph['zk_cpu_ms']:.1f} ms (request handling "
                  f"{ph['zk_handling_ms']:.1f} ms, JIT compiler "
                  f"{ph['zk_jit_ms']:.1f} ms), this benchmark playing Zuul "
                  f"{ph['zuul_cpu_ms']:.1f} ms (all share the 2 cores)")
    for label, ph in (("burst", burst), ("paced", paced)):
        if ph and ph["ops"]:
            n = max(1, ph["fulfilled"])
            print(f"{label}: ZooKeeper operations per request: "
                  f"{ops_per_request(ph):.2f} ("
                  + ", ".join(f"{k} {v / n:.2f}" for k, v in
                              sorted(ph["ops"].items(),
                                     key=lambda kv: -kv[1])
                              if v / n >= 0.01)
                  + ")")
    w = r["warmup"]
    if w:
        print(f"warm-up: {w['rounds']} round(s), JIT compiler share over "
              f"the last {QUIET_ROUNDS}: {w['jit_share']:.1%}"
              + (" (CAP REACHED: ZooKeeper's JIT was not done)"
                 if w["capped"] else ""))
    else:
        print("warm-up: none (--warmup-round 0)")
    ok = True
    for label, ph in (("burst", burst), ("paced", paced)):
        if ph:
            print(f"{label}: fulfilled {ph['fulfilled']}/{ph['requests']}, "
                  f"failed {ph['failed']}, wall {ph['seconds']:.1f}s")
            ok &= ph["fulfilled"] == ph["requests"]
    return ok


if __name__ == "__main__":
    sys.exit(main())
