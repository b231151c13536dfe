"""Benchmark of the OpenStack driver against the local OpenStack.

Starts a real ZooKeeper (mutual TLS), the local OpenStack in this process
with a slow ``POST /servers`` (1 s unless --latency), and a
``nodepool-launcher`` process configured with ``rate`` seconds between
calls.  Plays Zuul for N single-node requests, then releases the nodes and
waits for the deletes.

The figure of issue 5: creates/s ÷ configured calls/s (1/rate), where
creates/s is the steady-state spacing of ``POST /servers`` arrivals at the
cloud, (N-1) / (last arrival - first arrival); target ≥ 0.95.  Also shown:
request→fulfilled latency, deletes/s ÷ calls/s, the most creates the cloud
saw in flight at once (the create pool at work), the server list calls
made while nodes were in flight, and launcher CPU per node.

    python -m tools.bench_openstack [--requests 60] [--rate 0.2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time

import yaml
from kazoo.client import KazooClient

from tools.bench_core import percentile, proc_cpu_seconds
from tools.fakeopenstack import LocalOpenStack
from tools.zookeeper import ZooKeeperServer
from tools.zuulsim import ZuulSim

BIN = os.path.dirname(sys.executable)
CREATE = "POST /compute/v2.1/servers"
DELETE = "DELETE /compute/v2.1/servers/{server_id}"
LIST = "GET /compute/v2.1/servers/detail"


class CallClock:
    """Samples the cloud's call counters; when each create/delete arrived."""

    def __init__(self, cloud: LocalOpenStack, interval: float = 0.005):
        self.cloud = cloud
        self.interval = interval
        self.arrivals: dict[str, list[float]] = {CREATE: [], DELETE: []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bench-callclock")

    def start(self) -> "CallClock":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            calls = self.cloud.stats()["calls"]
            for key, times in self.arrivals.items():
                times.extend([now] * (calls.get(key, 0) - len(times)))


def per_second(times: list[float]) -> float:
    if len(times) < 2:
        return float("nan")
    return (len(times) - 1) / max(times[-1] - times[0], 1e-6)


def write_config(path: str, zk: ZooKeeperServer, n: int, rate: float
                 ) -> None:
    data = {
        "zookeeper-servers": [{"host": "127.0.0.1", "port": zk.secure_port}],
        "zookeeper-tls": {"cert": zk.certs.client_cert,
                          "key": zk.certs.client_key, "ca": zk.certs.ca},
        "labels": [{"name": "bench"}],
        "providers": [{
            "name": "bench-os", "driver": "openstack", "cloud": "bench",
            "region-name": "RegionOne", "rate": rate,
            "launch-timeout": 600,
            "cloud-images": [{"name": "img", "image-name": "ubuntu-jammy",
                              "username": "zuul"}],
            "pools": [{"name": "main", "max-servers": n * 2,
                       "host-key-checking": False,
                       "auto-floating-ip": False,
                       "labels": [{"name": "bench", "cloud-image": "img",
                                   "flavor-name": "m1.tiny"}]}],
        }],
    }
    with open(path, "w") as f:
        yaml.safe_dump(data, f)


def wait_fulfilled(client: KazooClient, ids: list[str], timeout: float
                   ) -> dict[str, float]:
    done: dict[str, float] = {}
    cond = threading.Condition()

    def watcher(rid: str):
        def watch(data, stat):
            if data is None:
                return False
            if json.loads(data).get("state") in ("fulfilled", "failed"):
                with cond:
                    done.setdefault(rid, time.monotonic())
                    cond.notify_all()
                return False
            return True
        return watch

    for rid in ids:
        client.DataWatch(f"/nodepool/requests/{rid}", watcher(rid))
    deadline = time.monotonic() + timeout
    with cond:
        while len(done) < len(ids):
            if not cond.wait(min(2.0, max(0.0, deadline - time.monotonic()))):
                print(f"  {len(done)}/{len(ids)} fulfilled", flush=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(done)}/{len(ids)} done")
    return done


def start_launcher(cfg: str, clouds: str, workdir: str, client: KazooClient
                   ) -> subprocess.Popen:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds)
    log = open(os.path.join(workdir, "launcher.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "nodepool-launcher"), "-f",
                             "-c", cfg, "--no-webapp"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (client.exists("/nodepool/components/pool")
               and client.get_children("/nodepool/components/pool")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"launcher did not start, see {log.name}")
        time.sleep(0.1)
    return proc


def run(n: int, rate: float, latency: float, workdir: str) -> dict:
    zk = ZooKeeperServer(os.path.join(workdir, "zk"), tls=True,
                         fast_start=False, heap="512m").start()
    cloud = LocalOpenStack(create_latency=latency, max_instances=n * 2,
                           max_cores=n * 2, max_ram=n * 2 * 512).start()
    proc = None
    client = KazooClient(hosts=zk.hosts)
    try:
        clouds = cloud.write_clouds_yaml(os.path.join(workdir, "clouds.yaml"),
                                         cloud_name="bench")
        cfg = os.path.join(workdir, "nodepool.yaml")
        write_config(cfg, zk, n, rate)
        client.start(timeout=15)
        client.ensure_path("/nodepool/requests")
        proc = start_launcher(cfg, clouds, workdir, client)
        cloud.reset_stats()
        clock = CallClock(cloud).start()
        cpu0 = proc_cpu_seconds(proc.pid)
        zuul = ZuulSim(client)
        submitted = {}
        for _ in range(n):
            submitted[zuul.submit(["bench"])] = time.monotonic()
        done = wait_fulfilled(client, list(submitted), timeout=600)
        create_stats = cloud.stats()
        nodes = []
        for rid in submitted:
            req = zuul.get_request(rid)
            if req["state"] != "fulfilled":
                raise RuntimeError(f"request {rid} {req['state']}")
            nodes += zuul.accept(rid)
        zuul.release(nodes)
        for node_id in nodes:
            zuul.wait_node_gone(node_id, timeout=600)
        cpu = proc_cpu_seconds(proc.pid) - cpu0
        clock.stop()
        latencies = [done[r] - submitted[r] for r in submitted]
        calls_per_s = 1 / rate if rate > 0 else float("inf")
        creates = per_second(clock.arrivals[CREATE])
        deletes = per_second(clock.arrivals[DELETE])
        return {
            "n": n, "rate": rate, "calls_per_s": calls_per_s,
            "creates_per_s": creates, "create_ratio": creates / calls_per_s,
            "deletes_per_s": deletes, "delete_ratio": deletes / calls_per_s,
            "creates": create_stats["calls"].get(CREATE, 0),
            "max_in_flight": create_stats["max_in_flight"].get(CREATE, 0),
            "server_lists": create_stats["calls"].get(LIST, 0),
            "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99),
            "cpu_ms_per_node": 1000 * cpu / n,
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        client.stop()
        cloud.stop()
        zk.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--rate", type=float, default=0.2,
                   help="provider rate: seconds between calls (default 0.2)")
    p.add_argument("--latency", type=float, default=1.0,
                   help="seconds each POST /servers takes (default 1.0)")
    args = p.parse_args(argv)
    # kazoo reports ZooKeeper's own start-up hiccups as warnings; the
    # launcher's log is in its work directory.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-openstack-") as d:
        r = run(args.requests, args.rate, args.latency, d)
    print()
    print(f"OpenStack: {r['n']} requests, rate {r['rate']} s between calls "
          f"({r['calls_per_s']:.2f} calls/s), POST /servers {args.latency}s")
    print(f"{'metric':<36}{'value':>10}  {'target':>8}")
    rows = [("creates/s", r["creates_per_s"], ""),
            ("creates/s ÷ rate", r["create_ratio"], ">=0.95"),
            ("deletes/s ÷ rate", r["delete_ratio"], ""),
            ("max creates in flight", r["max_in_flight"], ""),
            ("server list calls (whole create run)", r["server_lists"], ""),
            ("p50 request->fulfilled (s)", r["p50_s"], ""),
            ("p99 request->fulfilled (s)", r["p99_s"], ""),
            ("launcher CPU per node (ms)", r["cpu_ms_per_node"], "")]
    for name, value, target in rows:
        print(f"{name:<36}{value:>10.2f}  {target:>8}")
    return 0 if r["create_ratio"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
