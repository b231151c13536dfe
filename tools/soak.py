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

Stalls: seconds in a row (two or more) in which requests were open and
none was fulfilled, longest first, each with the RunInstances calls the
local AWS answered meanwhile and the calls that held moto for half a
second or more around it (moto answers one call at a time, so one slow
call holds every other); then the time moto spent per action.  With
``--workdir`` the per-second timeline (submitted, fulfilled, open,
RunInstances calls and instances) is kept as ``timeline.csv``.

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
        self.submitted_at: list[float] = []     # time.time() of each
        self.fulfilled_at: list[float] = []     # time.time() of each
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
                self.submitted_at.append(time.time())
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
            self.fulfilled_at.append(time.time())
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


def timeline(start: float, end: float, submitted: list[float],
             fulfilled: list[float], run_calls: list[dict]) -> list[dict]:
    """Per second of the run (``time.time()`` bins from ``start``):
    requests submitted and fulfilled, RunInstances calls answered and the
    instances they started, and the requests open at the second's start."""
    bins = [{"t": i, "submitted": 0, "fulfilled": 0, "run_calls": 0,
             "launched": 0, "open": 0}
            for i in range(max(1, int(end - start) + 1))]

    def add(at: float, key: str, n: int = 1) -> None:
        i = int(at - start)
        if 0 <= i < len(bins):
            bins[i][key] += n
    for at in submitted:
        add(at, "submitted")
    for at in fulfilled:
        add(at, "fulfilled")
    for record in run_calls:
        if record.get("outcome") == "ok":
            add(record["time"], "run_calls")
            add(record["time"], "launched", record.get("launched", 0))
    open_ = 0
    for row in bins:
        row["open"] = open_
        open_ += row["submitted"] - row["fulfilled"]
    return bins


def stalls(bins: list[dict], key: str = "fulfilled", at_least: int = 2
           ) -> list[tuple[int, int]]:
    """Runs of ``at_least`` seconds or more in which requests were open
    but none was fulfilled: ``(first second, length)``, longest first."""
    out, first = [], None
    for row in bins + [{"t": len(bins), key: 1, "open": 0}]:
        idle = row[key] == 0 and row["open"] > 0
        if idle and first is None:
            first = row["t"]
        elif not idle and first is not None:
            if row["t"] - first >= at_least:
                out.append((first, row["t"] - first))
            first = None
    return sorted(out, key=lambda s: -s[1])


def write_timeline(path: str, bins: list[dict]) -> None:
    keys = ("t", "submitted", "fulfilled", "open", "run_calls", "launched")
    with open(path, "w") as f:
        f.write(",".join(keys) + "\n")
        for row in bins:
            f.write(",".join(str(row[k]) for k in keys) + "\n")


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
    in_flight = args.rate * (args.hold + args.latency + 10)
    max_servers = int(in_flight * 3) + 50
    # vCPUs (t3.micro: 2) for every server, plus a minute of deleted
    # nodes whose instances a cached listing still shows (the launcher
    # counts them as unmanaged): the soak is about leaks, not quota.
    vcpus = 2.0 * (max_servers + args.rate * 60)
    aws = LocalAWS(run_instances_latency=args.latency, throttle=False,
                   quotas={"ec2": {"L-1216C47A": vcpus}},
                   workdir=os.path.join(d, "aws"), terminated_ttl=120).start()
    proc = None
    client = KazooClient(hosts=zk.hosts)
    try:
        boot = aws.bootstrap()
        cfg = os.path.join(d, "soak.yaml")
        launcher_config(cfg, zk, boot, rate=max(10.0, args.rate),
                        max_servers=max_servers)
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
        wall0 = time.time()
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
        astats = aws.stats()
        bins = timeline(wall0, time.time(), requester.submitted_at,
                        requester.fulfilled_at,
                        astats["run_instances"]["instances"])
        write_timeline(os.path.join(d, "timeline.csv"), bins)
        found = stalls(bins)
        kept = (f"; per-second timeline in {d}/timeline.csv"
                if args.workdir else "")
        print(f"stalls (>= 2 s with requests open and none fulfilled"
              f"{kept}): {len(found) or 'none'}")
        for first, length in found[:5]:
            window = bins[first:first + length]
            print(f"  t {first}-{first + length} s: {length} s, "
                  f"{window[0]['open']} open, "
                  f"{sum(r['run_calls'] for r in window)} RunInstances "
                  f"answered ({sum(r['launched'] for r in window)} "
                  "instances)")
            # moto answers one call at a time: a long one holds the rest
            for slow in astats.get("slow_moto", []):
                at = slow["time"] - wall0
                if first - 2 <= at - slow["seconds"] <= first + length:
                    print(f"    {slow['action']} held moto "
                          f"{slow['seconds']:.1f} s, ending at t "
                          f"{at:.1f} s")
        busiest = sorted(astats.get("moto", {}).items(),
                         key=lambda kv: -kv[1]["seconds"])[:6]
        print("local AWS: time in moto per action (calls, total s, max s): "
              + ", ".join(f"{a} {e['calls']} {e['seconds']:.0f} "
                          f"{e['max_s']:.2f}" for a, e in busiest))
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
