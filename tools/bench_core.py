"""Benchmark of the launcher core with the zero-latency fake adapter.

Starts a real ZooKeeper (mutual TLS) and ``nodepool-launcher`` (a separate
process, so its CPU time and peak RSS can be read from /proc), warms both
up with a few hundred requests, then runs two phases of N single-node
requests each, submitted as Zuul would:

* **burst**: all N at once; requests/s = N ÷ seconds until the last is
  fulfilled (the launcher's capacity), and CPU per node;
* **paced**: N arriving at ``--rate`` per second (default 100, the
  target); p50/p99 request→fulfilled latency at that offered load.  (In
  the burst phase latency only measures queueing: the last request waits
  N ÷ throughput.)

Prints both against the targets of issue 3 (≥ 100 requests/s on 2 cores,
≤ 20 ms CPU per node, p99 < 2 s), plus the CPU the ZooKeeper server and
this process (playing Zuul) spent per request: all three share the cores.

    python -m tools.bench_core [--requests 1000] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import yaml
from kazoo.client import KazooClient

from tools.zookeeper import ZooKeeperServer

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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
    """Watches every request, records when it becomes fulfilled, then
    deletes it."""

    def __init__(self, client: KazooClient, total: int):
        self.client = client
        self.total = total
        self.submitted: dict[str, float] = {}
        self.fulfilled: dict[str, float] = {}
        self.failed: set[str] = set()
        self.done = threading.Event()
        self.lock = threading.Lock()

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
            state = json.loads(data).get("state")
            if state in ("fulfilled", "failed"):
                with self.lock:
                    if state == "fulfilled":
                        self.fulfilled.setdefault(rid, time.monotonic())
                    else:
                        self.failed.add(rid)
                    if len(self.fulfilled) + len(self.failed) >= self.total:
                        self.done.set()
                # As Zuul does once it has the nodes: the request goes (its
                # nodes stay allocated: the launcher keeps counting them).
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


def read_ops(path: str, after: float) -> dict[str, int]:
    """The launcher's op counts from a dump written after ``after``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                data = json.load(f)
            if data["time"] > after:
                return data["ops"]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no fresh op counts in {path}")


def run_phase(client, n: int, rate: float | None, launcher, zk,
              ops_file: str | None) -> dict:
    """Submit ``n`` requests (all at once, or ``rate`` per second), wait
    for them, and measure."""
    cpu0 = proc_cpu_seconds(launcher.pid)
    zk_cpu0 = proc_cpu_seconds(zk.process.pid)
    own_cpu0 = time.process_time()
    ops0 = read_ops(ops_file, time.time()) if ops_file else {}
    coll = Collector(client, n)
    t0 = time.monotonic()
    coll.submit(n, rate)
    last = 0
    while not coll.done.wait(2.0):
        done = len(coll.fulfilled)
        print(f"  {done}/{n} fulfilled ({time.monotonic() - t0:.1f}s)",
              flush=True)
        if done == last and time.monotonic() - t0 > 600:
            raise RuntimeError("no progress")
        last = done
    elapsed = max(coll.fulfilled.values()) - t0
    got = max(1, len(coll.fulfilled))
    cpu = proc_cpu_seconds(launcher.pid) - cpu0
    zk_cpu = proc_cpu_seconds(zk.process.pid) - zk_cpu0
    own_cpu = time.process_time() - own_cpu0
    lat = [coll.fulfilled[r] - coll.submitted[r] for r in coll.fulfilled]
    ops = {}
    if ops_file:
        ops1 = read_ops(ops_file, time.time())
        ops = {k: ops1[k] - ops0.get(k, 0) for k in ops1
               if ops1[k] - ops0.get(k, 0)}
    return {
        "ops": ops, "requests": n, "fulfilled": len(coll.fulfilled),
        "failed": len(coll.failed), "seconds": elapsed,
        "requests_per_s": len(coll.fulfilled) / elapsed,
        "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
        "cpu_ms_per_node": 1000 * cpu / got,
        "zk_cpu_ms": 1000 * zk_cpu / got,
        "zuul_cpu_ms": 1000 * own_cpu / got,
    }


def run(requests: int, workdir: str, tls: bool = True,
        count_ops: bool = False, rate: float = 100.0,
        warmup: int = 300) -> dict:
    zk = ZooKeeperServer(os.path.join(workdir, "zk"), tls=True,
                         fast_start=False, heap="512m").start()
    launcher = None
    try:
        cfg = os.path.join(workdir, "nodepool.yaml")
        write_config(cfg, zk, 2 * requests + warmup, tls)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=15)
        client.ensure_path("/nodepool/requests")
        log = open(os.path.join(workdir, "launcher.log"), "w")
        ops_file = os.path.join(workdir, "zkops.json")
        entry = (["-m", "tools.zkops", ops_file, "--"] if count_ops
                 else ["-m", "nodepool.cmd.launcher"])
        launcher = subprocess.Popen(
            [sys.executable, *entry, "-f", "-c", cfg, "--no-webapp"],
            stdout=log, stderr=subprocess.STDOUT)
        # wait for the pool component: the launcher is serving
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool")
                   and client.get_children("/nodepool/components/pool")):
            if time.monotonic() > deadline or launcher.poll() is not None:
                raise RuntimeError("launcher did not start; see "
                                   f"{workdir}/launcher.log")
            time.sleep(0.1)
        if warmup:
            print(f"warming up with {warmup} requests ...", flush=True)
            run_phase(client, warmup, None, launcher, zk, None)
        print(f"burst: {requests} requests at once ...", flush=True)
        burst = run_phase(client, requests, None, launcher, zk,
                          ops_file if count_ops else None)
        paced = None
        if rate:
            print(f"paced: {requests} requests at {rate:g}/s ...",
                  flush=True)
            paced = run_phase(client, requests, rate, launcher, zk, None)
        return {"burst": burst, "paced": paced, "rate": rate,
                "peak_rss_mb": proc_peak_rss_mb(launcher.pid)}
    finally:
        if launcher is not None:
            launcher.terminate()
            launcher.wait(timeout=30)
        zk.stop()


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
    p.add_argument("--warmup", type=int, default=300,
                   help="requests served before measuring (JIT of the "
                   "ZooKeeper server, caches; default %(default)s)")
    p.add_argument("--workdir", help="keep the launcher's and ZooKeeper's "
                   "logs here (default: a temporary directory)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-core-") as d:
        if args.workdir:
            os.makedirs(args.workdir, exist_ok=True)
            d = args.workdir
        r = run(args.requests, d, tls=not args.plain,
                count_ops=args.count_ops, rate=args.rate,
                warmup=args.warmup)
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
            print(f"{label}: other CPU per request: ZooKeeper server "
                  f"{ph['zk_cpu_ms']:.1f} ms, this benchmark playing Zuul "
                  f"{ph['zuul_cpu_ms']:.1f} ms (all share the 2 cores)")
    if burst["ops"]:
        n = max(1, burst["fulfilled"])
        total = sum(burst["ops"].values())
        print(f"ZooKeeper operations per request: {total / n:.2f} ("
              + ", ".join(f"{k} {v / n:.2f}" for k, v in
                          sorted(burst["ops"].items(), key=lambda kv: -kv[1])
                          if v / n >= 0.01)
              + ")")
    ok = True
    for label, ph in (("burst", burst), ("paced", paced)):
        if ph:
            print(f"{label}: fulfilled {ph['fulfilled']}/{ph['requests']}, "
                  f"failed {ph['failed']}, wall {ph['seconds']:.1f}s")
            ok &= ph["fulfilled"] == ph["requests"]
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
