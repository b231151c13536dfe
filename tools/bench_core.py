"""Benchmark of the launcher core with the zero-latency fake adapter.

Starts a real ZooKeeper and ``nodepool-launcher`` (a separate process, so
its CPU time and peak RSS can be read from /proc), submits N single-node
requests as Zuul would, and waits for all of them to be fulfilled.

Prints requests/s, p50/p99 request→fulfilled latency, launcher CPU seconds
per node and peak RSS, against the targets of issue 3 (≥ 100 requests/s on
2 cores, ≤ 20 ms CPU per node, p99 < 2 s).

    python -m tools.bench_core [--requests 1000]
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
    """Watches every request and records when it becomes fulfilled."""

    def __init__(self, client: KazooClient, total: int):
        self.client = client
        self.total = total
        self.submitted: dict[str, float] = {}
        self.fulfilled: dict[str, float] = {}
        self.failed: set[str] = set()
        self.done = threading.Event()
        self.lock = threading.Lock()

    def submit(self, n: int) -> None:
        now = time.time()
        body = {"state": "requested", "state_time": now,
                "node_types": ["bench"], "nodes": [], "declined_by": [],
                "reuse": False, "requestor": "bench", "created_time": now}
        results = []
        for _ in range(n):
            results.append((time.monotonic(), self.client.create_async(
                "/nodepool/requests/200-", json.dumps(body).encode(),
                sequence=True)))
        for t0, res in results:
            rid = res.get().rsplit("/", 1)[1]
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


def run(requests: int, workdir: str, tls: bool = True,
        count_ops: bool = False) -> dict:
    zk = ZooKeeperServer(os.path.join(workdir, "zk"), tls=True,
                         fast_start=False, heap="512m").start()
    launcher = None
    try:
        cfg = os.path.join(workdir, "nodepool.yaml")
        write_config(cfg, zk, requests, tls)
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
        cpu0 = proc_cpu_seconds(launcher.pid)
        ops0 = read_ops(ops_file, time.time()) if count_ops else {}
        coll = Collector(client, requests)
        t0 = time.monotonic()
        print(f"submitting {requests} requests ...", flush=True)
        coll.submit(requests)
        last = 0
        while not coll.done.wait(2.0):
            n = len(coll.fulfilled)
            print(f"  {n}/{requests} fulfilled "
                  f"({time.monotonic() - t0:.1f}s)", flush=True)
            if n == last and time.monotonic() - t0 > 600:
                raise RuntimeError("no progress")
            last = n
        elapsed = max(coll.fulfilled.values()) - t0
        cpu = proc_cpu_seconds(launcher.pid) - cpu0
        lat = [coll.fulfilled[r] - coll.submitted[r] for r in coll.fulfilled]
        ops = {}
        if count_ops:
            ops1 = read_ops(ops_file, time.time())
            ops = {k: ops1[k] - ops0.get(k, 0) for k in ops1
                   if ops1[k] - ops0.get(k, 0)}
        return {
            "ops": ops,
            "requests": requests, "fulfilled": len(coll.fulfilled),
            "failed": len(coll.failed), "seconds": elapsed,
            "requests_per_s": len(coll.fulfilled) / elapsed,
            "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
            "cpu_ms_per_node": 1000 * cpu / max(1, len(coll.fulfilled)),
            "peak_rss_mb": proc_peak_rss_mb(launcher.pid),
        }
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
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-core-") as d:
        r = run(args.requests, d, tls=not args.plain,
                count_ops=args.count_ops)
    print()
    print(f"{'metric':<34}{'value':>12}  {'target':>10}  ratio")
    rows = [("requests/s", r["requests_per_s"], 100, True),
            ("p50 request->fulfilled (s)", r["p50_s"], None, False),
            ("p99 request->fulfilled (s)", r["p99_s"], 2.0, False),
            ("launcher CPU per node (ms)", r["cpu_ms_per_node"], 20, False),
            ("launcher peak RSS (MiB)", r["peak_rss_mb"], None, False)]
    for name, value, target, higher in rows:
        ratio = ""
        if target:
            ratio = f"{(value / target) if higher else (target / value):.2f}x"
        tgt = f"{'>=' if higher else '<='}{target}" if target else "-"
        print(f"{name:<34}{value:>12.3f}  {tgt:>10}  {ratio}")
    if r["ops"]:
        n = max(1, r["fulfilled"])
        total = sum(r["ops"].values())
        print(f"ZooKeeper operations per request: {total / n:.2f} ("
              + ", ".join(f"{k} {v / n:.2f}" for k, v in
                          sorted(r["ops"].items(), key=lambda kv: -kv[1]))
              + ")")
    print(f"fulfilled {r['fulfilled']}/{r['requests']}, failed {r['failed']}"
          f", wall {r['seconds']:.1f}s")
    return 0 if r["fulfilled"] == r["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
