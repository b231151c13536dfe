"""Soak: the launcher under a steady request rate for N minutes.

Starts a real ZooKeeper (mutual TLS), the local AWS (moto behind the
EC2-like proxy, RunInstances latency ``--latency``; terminated instances
forgotten after two minutes, as EC2 forgets them after an hour) and one
``nodepool-launcher`` process, then plays Zuul at ``--rate`` requests per
second for ``--minutes``: each request is submitted, waited for, its node
locked and set ``in-use`` for ``--hold`` seconds (the "job"), then
``used`` and unlocked, so the launcher deletes it -- create, use, return.

Every ``--sample`` seconds it reads the launcher's resident memory,
threads and open files from /proc and its ZooKeeper watches from the
server (``wchc``, the launcher's sessions only: the harness's own watches
are left out), and prints a row.  At the end: growth of each figure from
the first samples after warm-up (``--warmup``, a fraction of the run) to
the last ones, and the requests lost (submitted but neither fulfilled nor
failed when the run drained), failed, and their p50/p99 latency.  The
target: growth < 5 % on each, 0 requests lost.

    python -m tools.soak --minutes 30 --rate 20
    python -m tools.soak --minutes 2 --rate 5      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from kazoo.client import KazooClient

from tools.fakeaws import LocalAWS
from tools.zookeeper import ZooKeeperServer, four_letter
from tools.zuulsim import ZuulSim

BIN = os.path.dirname(sys.executable)
FIGURES = ("rss_mb", "threads", "fds", "watches")


# -- what is measured --------------------------------------------------------
def proc_figures(pid: int) -> dict[str, float]:
    """Resident memory (MB), threads and open files of ``pid``."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def session_watches(port: int, exclude: set[str]) -> int:
    """Watches the server holds for every session but ``exclude`` (hex ids
    as ``wchc`` prints them)."""
    text = four_letter(port, "wchc", timeout=10.0)
    count, counting = 0, False
    for line in text.splitlines():
        if line.startswith("0x"):
            counting = line.strip() not in exclude
        elif line.startswith("\t") and counting:
            count += 1
    return count


# -- playing Zuul ---------------------------------------------------------------
class Requester:
    """Submits at a steady rate; each request's life runs on a worker."""

    def __init__(self, client: KazooClient, rate: float, hold: float,
                 label: str):
        self.zuul = ZuulSim(client)
        self.rate, self.hold, self.label = rate, hold, label
        self.pool = ThreadPoolExecutor(max_workers=512,
                                       thread_name_prefix="zuul")
        self.lock = threading.Lock()
        self.submitted = self.fulfilled = self.failed = self.errors = 0
        self.latencies: list[float] = []
        self.done_at: list[float] = []
        self.stop = threading.Event()

    def run(self, seconds: float) -> None:
        t0 = time.monotonic()
        i = 0
        while not self.stop.is_set():
            at = t0 + i / self.rate
            if at - t0 >= seconds:
                return
            if self.stop.wait(max(0.0, at - time.monotonic())):
                return
            rid = self.zuul.submit([self.label])
            with self.lock:
                self.submitted += 1
            self.pool.submit(self._life, rid, time.monotonic())
            i += 1

    def _life(self, rid: str, submitted: float) -> None:
        try:
            req = self.zuul.wait_state(rid, {"fulfilled", "failed"},
                                       timeout=300)
        except Exception:
            with self.lock:
                self.errors += 1
            return
        if req["state"] != "fulfilled":
            with self.lock:
                self.failed += 1
            self.zuul.delete_request(rid)
            return
        now = time.monotonic()
        with self.lock:
            self.fulfilled += 1
            self.latencies.append(now - submitted)
            self.done_at.append(now)
        try:
            nodes = self.zuul.accept(rid)
            self.zuul.set_in_use(nodes)
            self.stop.wait(self.hold)          # the job
            self.zuul.release(nodes)
        except Exception:
            with self.lock:
                self.errors += 1

    def drain(self, timeout: float) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)

    def rate_since(self, since: float) -> float:
        with self.lock:
            n = sum(1 for t in self.done_at if t >= since)
        return n / max(1e-6, time.monotonic() - since)


# -- the run -------------------------------------------------------------------
def launcher_config(path: str, zk: ZooKeeperServer, boot: dict, rate: float,
                    max_servers: int) -> None:
    data = {
        "zookeeper-servers": [{"host": "127.0.0.1",
                               "port": zk.secure_port}],
        "zookeeper-tls": {"cert": zk.certs.client_cert,
                          "key": zk.certs.client_key, "ca": zk.certs.ca},
        "labels": [{"name": "soak"}],
        "providers": [{
            "name": "soak-aws", "driver": "aws",
            "region-name": boot["region"], "rate": rate,
            "batch-creates": True, "launch-timeout": 600,
            "cloud-images": [{"name": "img", "image-id": boot["image_id"],
                              "username": "ubuntu"}],
            "pools": [{"name": "main", "max-servers": max_servers,
                       "subnet-id": boot["subnet_id"],
                       "security-group-id": boot["security_group_id"],
                       "host-key-checking": False,
                       "labels": [{"name": "soak", "cloud-image": "img",
                                   "instance-type": "t3.micro",
                                   "key-name": boot["key_name"]}]}],
        }],
    }
    with open(path, "w") as f:
        yaml.safe_dump(data, f)


def growth(samples: list[dict], warmup: float, figure: str,
           window: int = 3) -> float:
    """Relative growth of ``figure`` from the first ``window`` samples after
    warm-up to the last ``window`` ones."""
    start = samples[0]["t"] + warmup
    after = [s[figure] for s in samples if s["t"] >= start]
    if len(after) < 2 * window:
        window = max(1, len(after) // 2)
    if not after:
        return 0.0
    first = statistics.mean(after[:window])
    last = statistics.mean(after[-window:])
    return (last - first) / first if first else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=20.0,
                   help="requests per second")
    p.add_argument("--hold", type=float, default=2.0,
                   help="seconds a node is in use")
    p.add_argument("--latency", type=float, default=1.5,
                   help="RunInstances latency of the local AWS")
    p.add_argument("--sample", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=0.2,
                   help="fraction of the run that is warm-up")
    p.add_argument("--workdir", help="keep logs here (default: temporary)")
    args = p.parse_args(argv)
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        d = args.workdir or tmp
        os.makedirs(d, exist_ok=True)
        return run(args, seconds, d)


def run(args, seconds: float, d: str) -> int:
    zk = ZooKeeperServer(os.path.join(d, "zk"), tls=True, fast_start=False,
                         heap="512m").start()
    aws = LocalAWS(run_instances_latency=args.latency, throttle=False,
                   workdir=os.path.join(d, "aws"), terminated_ttl=120).start()
    proc = None
    client = KazooClient(hosts=zk.hosts)
    try:
        boot = aws.bootstrap()
        cfg = os.path.join(d, "soak.yaml")
        in_flight = args.rate * (args.hold + args.latency + 10)
        launcher_config(cfg, zk, boot, rate=max(10.0, args.rate),
                        max_servers=int(in_flight * 3) + 50)
        log = open(os.path.join(d, "launcher.log"), "w")
        proc = subprocess.Popen(
            [os.path.join(BIN, "nodepool-launcher"), "-f", "-c", cfg,
             "--no-webapp"], env=dict(os.environ, **aws.env()), stdout=log,
            stderr=subprocess.STDOUT)
        client.start(timeout=15)
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool")
                   and client.get_children("/nodepool/components/pool")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"launcher did not start, see {log.name}")
            threading.Event().wait(0.1)
        own = {f"0x{client.client_id[0]:x}"}
        requester = Requester(client, args.rate, args.hold, "soak")
        feeder = threading.Thread(target=requester.run, args=(seconds,),
                                  daemon=True)
        t0 = time.monotonic()
        feeder.start()
        samples: list[dict] = []
        print(f"soak: {args.rate:g} requests/s for {args.minutes:g} min, "
              f"hold {args.hold:g} s, RunInstances {args.latency:g} s; "
              f"logs in {d}", flush=True)
        print(f"{'t s':>7}{'RSS MB':>9}{'threads':>9}{'fds':>6}"
              f"{'watches':>9}{'done/s':>8}{'fulfilled':>11}{'lost?':>7}",
              flush=True)
        last = t0
        while feeder.is_alive():
            feeder.join(args.sample)
            if proc.poll() is not None:
                raise RuntimeError(f"launcher exited, see {log.name}")
            now = time.monotonic()
            row = {"t": now - t0, **proc_figures(proc.pid),
                   "watches": session_watches(zk.port, own)}
            samples.append(row)
            with requester.lock:
                open_ = requester.submitted - requester.fulfilled - \
                    requester.failed - requester.errors
                fulfilled = requester.fulfilled
            print(f"{row['t']:>7.0f}{row['rss_mb']:>9.1f}"
                  f"{row['threads']:>9.0f}{row['fds']:>6.0f}"
                  f"{row['watches']:>9.0f}{requester.rate_since(last):>8.1f}"
                  f"{fulfilled:>11d}{open_:>7d}", flush=True)
            last = now
        requester.drain(timeout=360)
        lost = requester.submitted - requester.fulfilled - requester.failed
        print()
        print(f"submitted {requester.submitted}, fulfilled "
              f"{requester.fulfilled}, failed {requester.failed}, lost "
              f"{lost} (of which harness errors {requester.errors}); "
              f"latency p50 {percentile(requester.latencies, 50):.2f} s, "
              f"p99 {percentile(requester.latencies, 99):.2f} s")
        warm = seconds * args.warmup
        ok = lost == 0 and requester.failed == 0
        print(f"growth after {warm:.0f} s of warm-up (first 3 samples "
              "against the last 3; target < 5 %):")
        for figure in FIGURES:
            g = growth(samples, warm, figure)
            ok = ok and g < 0.05
            print(f"  {figure:<8} {g * 100:+6.1f} %")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        client.stop()
        aws.stop()
        zk.stop()


if __name__ == "__main__":
    sys.exit(main())
