"""Benchmark of the Azure driver: does it use the whole ``rate``?

Starts a real ZooKeeper, a LocalAzure (HTTPS, VM creates taking
``--latency`` seconds, 2 by default) and ``nodepool-launcher`` as a
separate process with one Azure provider at ``--rate`` requests per
second, submits N single-node requests as Zuul would, and waits until all
are fulfilled.

``rate`` limits the provider's *writes* (every PUT and DELETE); each node
needs one PUT per resource: public IP, NIC, VM (two without a public IP).
The figure of merit is therefore the create calls per second the launcher
achieves in steady state (between 10 % and 90 % of all PUTs, sampled from
LocalAzure's own counters), divided by ``rate``: 1.0 means the limiter is
never idle although every VM takes ``--latency`` seconds to come up.
Nodes per second follow as that rate ÷ PUTs per node.

    python -m tools.bench_azure [--requests 60] [--rate 5] [--latency 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import yaml
from kazoo.client import KazooClient

from tools.bench_core import Collector, percentile, proc_cpu_seconds
from tools.fakeazure import LocalAzure
from tools.zookeeper import ZooKeeperServer

RG = "nodepool"
LOCATION = "westus"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench bench@nodepool"


def write_config(path: str, zk: ZooKeeperServer, auth_path: str,
                 requests: int, rate: float, public: bool) -> None:
    data = {
        "zookeeper-servers": [{"host": "127.0.0.1",
                               "port": zk.secure_port}],
        "zookeeper-tls": {"cert": zk.certs.client_cert,
                          "key": zk.certs.client_key, "ca": zk.certs.ca},
        "labels": [{"name": "bench"}],
        "providers": [{
            "name": "azure-bench", "driver": "azure",
            "location": LOCATION, "resource-group": RG,
            "resource-group-location": LOCATION, "auth-path": auth_path,
            "network": "net", "rate": rate,
            "cloud-images": [{"name": "img", "username": "zuul", "key": KEY,
                              "image-reference": {
                                  "publisher": "Canonical",
                                  "offer": "ubuntu-24_04-lts",
                                  "sku": "server", "version": "latest"}}],
            "pools": [{"name": "main", "max-servers": requests * 2,
                       "host-key-checking": False, "public-ipv4": public,
                       "labels": [{"name": "bench", "cloud-image": "img",
                                   "hardware-profile": {
                                       "vm-size": "Standard_B1s"}}]}],
        }],
    }
    with open(path, "w") as f:
        yaml.safe_dump(data, f)


class PutSampler:
    """Samples LocalAzure's PUT counter (time, count) every ``period``."""

    def __init__(self, azure: LocalAzure, period: float = 0.1):
        self.azure = azure
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def puts(self) -> int:
        return sum(n for key, n in self.azure.stats()["calls"].items()
                   if key.startswith("PUT ") and "resourceGroups/" in key
                   and key.count("{") > 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.puts()))
            self._stop.wait(self.period)

    def start(self) -> "PutSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self.puts()))

    def steady_rate(self, low: float = 0.1, high: float = 0.9) -> float:
        """PUTs per second between ``low`` and ``high`` of the total."""
        total = self.samples[-1][1]
        t_low = next(t for t, n in self.samples if n >= low * total)
        t_high = next(t for t, n in self.samples if n >= high * total)
        n_low = next(n for t, n in self.samples if t >= t_low)
        n_high = next(n for t, n in self.samples if t >= t_high)
        return (n_high - n_low) / max(t_high - t_low, 1e-9)


def run(requests: int, rate: float, latency: float, public: bool,
        workdir: str) -> dict:
    zk = ZooKeeperServer(os.path.join(workdir, "zk"), tls=True,
                         fast_start=False, heap="512m").start()
    azure = LocalAzure(os.path.join(workdir, "azure"),
                       vm_create_latency=latency).start()
    launcher = None
    try:
        azure.ensure_network(RG, "net", location=LOCATION,
                             prefix="10.0.0.0/8", subnet_prefix="10.0.0.0/12")
        auth = azure.write_auth_file(os.path.join(workdir, "auth.json"))
        cfg = os.path.join(workdir, "nodepool.yaml")
        write_config(cfg, zk, auth, requests, rate, public)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=15)
        client.ensure_path("/nodepool/requests")
        log = open(os.path.join(workdir, "launcher.log"), "w")
        env = dict(os.environ, REQUESTS_CA_BUNDLE=azure.ca_path)
        launcher = subprocess.Popen(
            [sys.executable, "-m", "nodepool.cmd.launcher", "-f", "-c", cfg,
             "--no-webapp"], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool")
                   and client.get_children("/nodepool/components/pool")):
            if time.monotonic() > deadline or launcher.poll() is not None:
                raise RuntimeError("launcher did not start; see "
                                   f"{workdir}/launcher.log")
            time.sleep(0.1)
        azure.reset_stats()
        sampler = PutSampler(azure).start()
        cpu0 = proc_cpu_seconds(launcher.pid)
        coll = Collector(client, requests)
        t0 = time.monotonic()
        print(f"submitting {requests} requests (rate {rate}/s, "
              f"VM create latency {latency}s) ...", flush=True)
        coll.submit(requests)
        while not coll.done.wait(5.0):
            print(f"  {len(coll.fulfilled)}/{requests} fulfilled, "
                  f"{sampler.samples[-1][1]} PUTs "
                  f"({time.monotonic() - t0:.1f}s)", flush=True)
            if time.monotonic() - t0 > 1800:
                raise RuntimeError("no completion in 30 minutes")
        sampler.stop()
        elapsed = max(coll.fulfilled.values(), default=t0) - t0
        cpu = proc_cpu_seconds(launcher.pid) - cpu0
        stats = azure.stats()
        puts = sampler.samples[-1][1]
        lat = [coll.fulfilled[r] - coll.submitted[r] for r in coll.fulfilled]
        vm_puts = sum(n for k, n in stats["calls"].items()
                      if k.startswith("PUT ") and
                      k.endswith("virtualMachines/{vmName}"))
        return {
            "requests": requests, "fulfilled": len(coll.fulfilled),
            "failed": len(coll.failed), "seconds": elapsed,
            "puts": puts, "vm_creates": vm_puts,
            "puts_per_node": puts / max(1, len(coll.fulfilled)),
            "steady_puts_per_s": sampler.steady_rate(),
            "nodes_per_s": len(coll.fulfilled) / max(elapsed, 1e-9),
            "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
            "cpu_ms_per_node": 1000 * cpu / max(1, len(coll.fulfilled)),
            "throttled": stats["throttled"],
            "in_flight_max": stats["vm_creates_in_flight_max"],
        }
    finally:
        if launcher is not None:
            launcher.terminate()
            launcher.wait(timeout=30)
        azure.stop()
        zk.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--rate", type=float, default=5.0,
                   help="provider rate: writes per second (default 5)")
    p.add_argument("--latency", type=float, default=2.0,
                   help="seconds a VM create takes (default 2)")
    p.add_argument("--private", action="store_true",
                   help="no public IPs (two PUTs per node instead of three)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-azure-") as d:
        r = run(args.requests, args.rate, args.latency, not args.private, d)
    ratio = r["steady_puts_per_s"] / args.rate
    print()
    print(f"{'metric':<38}{'value':>10}")
    rows = [("create calls (PUT) per node", r["puts_per_node"]),
            ("steady create calls/s", r["steady_puts_per_s"]),
            ("creates/s ÷ rate  (target >= 0.95)", ratio),
            ("nodes/s over the whole run", r["nodes_per_s"]),
            ("VM creates in flight (max)", r["in_flight_max"]),
            ("p50 request->fulfilled (s)", r["p50_s"]),
            ("p99 request->fulfilled (s)", r["p99_s"]),
            ("launcher CPU per node (ms)", r["cpu_ms_per_node"]),
            ("429 answers", r["throttled"])]
    for name, value in rows:
        print(f"{name:<38}{value:>10.3f}")
    print(f"fulfilled {r['fulfilled']}/{r['requests']}, failed "
          f"{r['failed']}, {r['puts']} PUTs ({r['vm_creates']} VM), wall "
          f"{r['seconds']:.1f}s")
    ok = r["fulfilled"] == r["requests"] and ratio >= 0.95
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
