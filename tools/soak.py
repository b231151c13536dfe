"""Soak: the launcher under a steady request rate for N minutes.

Starts a real ZooKeeper (mutual TLS), the local AWS (moto behind the
EC2-like proxy, RunInstances latency ``--latency``; terminated instances
forgotten after ``--terminated-ttl``, two minutes by default, as EC2
forgets them after an hour) and one
``nodepool-launcher`` process, then plays Zuul at ``--rate`` requests per
second for ``--minutes``: each request is submitted, and when fulfilled
its node is locked, the request deleted and the node set ``in-use`` for
``--hold`` seconds (the "job"), then ``used`` and unlocked, so the
launcher deletes it -- create, use, return.  ``--cloud fake`` runs the
same against the launcher's fake adapter (creates taking ``--latency``),
which measures the harness and the launcher core without a cloud.

The harness has no thread per request: one thread submits on schedule
(asynchronous creates), each request's data watch reports its end on
kazoo's callback thread, four worker threads accept and return nodes and
one thread waits out the holds (``Requester``).

Every ``--sample`` seconds it reads the launcher's resident memory,
threads and open files from /proc and its ZooKeeper watches from the
server (``wchc``, the launcher's sessions only: the harness's own watches
are left out), and prints a row.  Beside them, to explain a rise: the
launcher's CPU per request fulfilled since the last row, and ZooKeeper's
average and largest request latency since the last row (``mntr``, then
``srst``) with its znode count.  At the end: growth of each figure from
the first samples after warm-up (``--warmup``, a fraction of the run) to
the last ones; the requests lost (submitted but neither fulfilled nor
failed once the run drained) and failed; the nodes left in ZooKeeper and
the instances left running at the local AWS after every node was
returned (leaked); the fulfilments per second sustained after warm-up,
p50/p99 latency and the CPU the launcher and the harness spent per
request.  The target: growth < 5 % on each, 0 requests lost, nothing
leaked.

Reading the growth: the launcher's thread pools (the create pool, the
pool workers' I/O threads, the deleter's) start a thread when a call finds
none idle and end those a whole minute went without, so the thread count
follows the calls in flight over the last minute; the report names the
families of threads whose count changed between the end of warm-up and
the end (from the launcher's SIGUSR2 stack dump).  Resident memory rises
after a backlog and stays: a rise that stops at such a step is not a
leak; one that climbs sample after sample is.

Stalls: seconds in a row (two or more) in which requests were open and
none was fulfilled, longest first, each with the RunInstances calls the
local AWS answered meanwhile and the calls that held moto for half a
second or more around it (moto answers one call at a time, so one slow
call holds every other); then the time moto spent per action.  With
``--workdir`` the per-second timeline (submitted, fulfilled, open,
RunInstances calls and instances) is kept as ``timeline.csv``.

Failure story: a request create or read that fails, a request that
vanishes before it is settled and a node that cannot be accepted or
returned count as harness errors (the first five are printed) and fail
the run, as do requests lost and nodes or instances leaked; the others
go on.  The launcher exiting ends the run with an error.  Stopping the
soak (SIGTERM, Ctrl-C) stops the launcher, the local AWS and ZooKeeper.

Threads: the main one samples and prints; ``zuul-feeder`` submits; kazoo's
callback thread settles requests; four ``zuul`` workers accept and return
nodes; ``zuul-holder`` waits out the holds (``Requester``).

    python -m tools.soak --minutes 30 --rate 20
    python -m tools.soak --minutes 2 --rate 5      # a smoke run
    python -m tools.soak --minutes 3 --rate 100 --cloud fake
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import queue
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tools.bench_aws import spawn_launchers
from tools.bench_core import proc_cpu_seconds, stop_launchers
from tools.fakeaws import LocalAWS
from tools.zookeeper import ZooKeeperServer, four_letter
from tools.zuulsim import NODES, REQUESTS, ZuulSim

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


DUMP_THREAD = re.compile(r"Thread \d+ \((.*?)\):$", re.M)
DUMP_END = "Objects tracked by the garbage collector"


def thread_family(name: str) -> str:
    """A thread's name without its number: ``...-io_5`` → ``...-io``."""
    return re.sub(r"[-_]?\d+$", "", name)


def thread_families(pid: int, log_path: str, timeout: float = 15.0
                    ) -> Counter:
    """The launcher's threads by family, from the stack dump SIGUSR2
    makes it log (empty if none came within ``timeout``)."""
    start = os.path.getsize(log_path)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while True:
        with open(log_path, errors="replace") as f:
            f.seek(start)
            text = f.read()
        if DUMP_END in text:
            return Counter(thread_family(name)
                           for name in DUMP_THREAD.findall(text))
        if time.monotonic() > deadline:
            return Counter()
        time.sleep(0.2)   # poll interval of the deadline loop


def families_changed(before: Counter, after: Counter) -> list[tuple]:
    """(family, before, after) for each family whose count changed."""
    return sorted((name, before[name], after[name])
                  for name in set(before) | set(after)
                  if before[name] != after[name])


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


def zk_latency(port: int) -> dict[str, float]:
    """ZooKeeper's request latency since the last call (ms: average and
    largest; ``mntr``, then ``srst`` resets the server's counters), the
    requests it has outstanding and its znodes."""
    figures = {}
    for line in four_letter(port, "mntr", timeout=10.0).splitlines():
        key, _, value = line.partition("\t")
        figures[key] = value
    four_letter(port, "srst", timeout=10.0)

    def number(key: str) -> float:
        try:
            return float(figures.get(key, "nan"))
        except ValueError:
            return float("nan")
    return {"zk_avg_ms": number("zk_avg_latency"),
            "zk_max_ms": number("zk_max_latency"),
            "zk_outstanding": number("zk_outstanding_requests"),
            "znodes": number("zk_znode_count")}


def interval_cpu(cpu0: float, cpu1: float, done0: int, done1: int) -> float:
    """The launcher's CPU per request fulfilled in an interval (ms; NaN
    when none was)."""
    done = done1 - done0
    return 1000 * (cpu1 - cpu0) / done if done > 0 else float("nan")


def process_name(pid: int) -> str:
    """A short name for a process: its Python module or script, or its
    program (``java`` is the ZooKeeper server)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace").split("\0")
    prog = os.path.basename(argv[0])
    if prog == "java":
        return "zookeeper"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    if prog.startswith("python") and len(argv) > 1 and argv[1]:
        return os.path.basename(argv[1])
    return prog


def family_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``root`` and each live descendant,
    by ``process_name`` (``root`` as "harness")."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1]
                                             .split()[1])
            except (OSError, ValueError, IndexError):
                continue   # gone meanwhile
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            name = "harness" if pid == root else process_name(pid)
            out[name] = out.get(name, 0.0) + proc_cpu_seconds(pid)
        except OSError:
            continue
        todo.extend(child for child, ppid in parent.items() if ppid == pid)
    return out


# -- playing Zuul ---------------------------------------------------------------
FINAL = ("fulfilled", "failed")


class Requester:
    """Plays Zuul at a steady rate without a thread per request.

    ``run`` submits on schedule (open loop: whatever the launcher does);
    each create's result and each request's data watch arrive on kazoo's
    callback thread (bookkeeping only, it never blocks); a fulfilled
    request goes to one of ``workers`` threads, which accept it as Zuul
    does (lock its nodes, check them, delete the request) and set the
    nodes ``in-use``; the holder thread waits out each hold (the "job";
    every hold is as long, so they end in the order they began) and hands
    the nodes back to a worker, which sets them ``used`` and unlocks them.

    Threads: the caller's (``run``), kazoo's, ``workers`` workers and the
    holder.  Every count is kept under ``lock``; ``settled`` is notified
    whenever a request or a hold ends, for ``drain``."""

    def __init__(self, client: KazooClient, rate: float, hold: float,
                 label: str, workers: int = 4):
        self.zuul = ZuulSim(client)
        self.rate, self.hold, self.label = rate, hold, label
        self.pool = ThreadPoolExecutor(max_workers=workers,
                                       thread_name_prefix="zuul")
        self.lock = threading.Lock()
        self.settled = threading.Condition(self.lock)
        self.submitted = self.fulfilled = self.failed = self.errors = 0
        self.held = 0                       # accepted, not yet returned
        self.returned: list[str] = []       # node ids given back
        self.error_samples: list[str] = []  # the first few, for the report
        self.open: dict[str, float] = {}    # request id -> submitted at
        self.latencies: list[float] = []
        self.done_at: list[float] = []
        self.submitted_at: list[float] = []     # time.time() of each
        self.fulfilled_at: list[float] = []     # time.time() of each
        self.creating = 0                   # creates not yet answered
        self.stop = threading.Event()
        self._holds: queue.Queue = queue.Queue()
        self._holder = threading.Thread(target=self._hold_loop,
                                        name="zuul-holder", daemon=True)
        self._holder.start()

    # -- submitting (the caller's thread) ------------------------------------
    def run(self, seconds: float) -> None:
        t0 = time.monotonic()
        i = 0
        while not self.stop.is_set():
            at = t0 + i / self.rate
            if at - t0 >= seconds:
                return
            if self.stop.wait(max(0.0, at - time.monotonic())):
                return
            with self.lock:
                self.creating += 1
            self.zuul.submit_async([self.label]).rawlink(
                functools.partial(self._created, time.monotonic()))
            i += 1

    # -- kazoo's callback thread: never blocks ----------------------------------
    def _created(self, submitted: float, result) -> None:
        try:
            rid = result.get_nowait().rsplit("/", 1)[1]
        except Exception as exc:
            with self.lock:
                self.creating -= 1
            self._error(f"request create failed: {exc!r}")
            return
        with self.lock:
            self.creating -= 1
            self.submitted += 1
            self.submitted_at.append(time.time())
            self.open[rid] = submitted
        self.zuul.watch_state(rid, FINAL, self._final)

    def _final(self, rid: str, req: dict | None, error) -> None:
        now = time.monotonic()
        with self.lock:
            submitted = self.open.pop(rid, now)
            if req is not None and req["state"] == "fulfilled":
                self.fulfilled += 1
                self.held += 1
                self.latencies.append(now - submitted)
                self.done_at.append(now)
                self.fulfilled_at.append(time.time())
            elif req is not None:
                self.failed += 1
            self.settled.notify_all()
        if req is None:
            self._error(f"request {rid}: "
                        + (f"read failed: {error!r}" if error else
                           "vanished before it was fulfilled"))
        elif req["state"] == "fulfilled":
            self.pool.submit(self._accept, rid)
        else:
            self.zuul.client.delete_async(f"{REQUESTS}/{rid}")

    # -- workers -------------------------------------------------------------
    def _accept(self, rid: str) -> None:
        try:
            nodes = self.zuul.accept(rid)
            self.zuul.set_in_use(nodes)
        except Exception as exc:
            self._error(f"request {rid}: accept failed: {exc!r}",
                        held=-1)
            return
        self._holds.put((time.monotonic() + self.hold, nodes))

    def _release(self, nodes: list[str]) -> None:
        try:
            self.zuul.release(nodes)
        except Exception as exc:
            self._error(f"nodes {nodes}: return failed: {exc!r}", held=-1)
            return
        with self.lock:
            self.held -= 1
            self.returned.extend(nodes)
            self.settled.notify_all()

    def _error(self, message: str, held: int = 0) -> None:
        with self.lock:
            self.errors += 1
            self.held += held
            if len(self.error_samples) < 5:
                self.error_samples.append(message)
            self.settled.notify_all()

    # -- the holder thread -------------------------------------------------------
    def _hold_loop(self) -> None:
        while True:
            item = self._holds.get()
            if item is None:
                return
            due, nodes = item
            # The job: waits out the hold (or ends early on stop).
            self.stop.wait(max(0.0, due - time.monotonic()))
            self.pool.submit(self._release, nodes)

    # -- the end -------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until every request submitted is settled and every node
        accepted is returned; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.open or self.held or self.creating:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.settled.wait(remaining)
            drained = not (self.open or self.held or self.creating)
        self._holds.put(None)
        self._holder.join(timeout=max(0.0, deadline - time.monotonic()))
        self.pool.shutdown(wait=drained, cancel_futures=not drained)
        return drained

    def rate_since(self, since: float) -> float:
        with self.lock:
            n = sum(1 for t in self.done_at if t >= since)
        return n / max(1e-6, time.monotonic() - since)


# -- the run -------------------------------------------------------------------
def launcher_config(path: str, zk: ZooKeeperServer, cloud: str,
                    boot: dict, rate: float, max_servers: int,
                    latency: float) -> None:
    """The launcher's configuration: one label on one pool of an AWS
    provider on the local AWS, or of a fake provider (``cloud`` "fake",
    creates taking ``latency`` seconds: the harness without the cloud)."""
    if cloud == "fake":
        provider = {
            "name": "soak-fake", "driver": "fake", "rate": rate,
            "create-latency": latency, "launch-timeout": 600,
            "cloud-images": [{"name": "img", "username": "zuul"}],
            "pools": [{"name": "main", "max-servers": max_servers,
                       "labels": [{"name": "soak", "cloud-image": "img"}]}]}
    else:
        provider = {
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
                                   "key-name": boot["key_name"]}]}]}
    data = {
        "zookeeper-servers": [{"host": "127.0.0.1",
                               "port": zk.secure_port}],
        "zookeeper-tls": {"cert": zk.certs.client_cert,
                          "key": zk.certs.client_key, "ca": zk.certs.ca},
        "labels": [{"name": "soak"}],
        "providers": [provider],
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
    p.add_argument("--cloud", choices=("aws", "fake"), default="aws",
                   help="the local AWS, or the fake adapter (the harness "
                   "and the launcher core without a cloud)")
    p.add_argument("--latency", type=float, default=1.5,
                   help="RunInstances (or fake create) latency, seconds")
    p.add_argument("--provider-rate", type=float,
                   help="the provider's rate, API calls per second "
                   "(default 3 x --rate + 10: a create or tag call per node "
                   "and the batched deletes, with room to catch up)")
    p.add_argument("--terminated-ttl", type=float, default=120.0,
                   help="seconds the local AWS lists a terminated "
                   "instance (moto's describe calls walk every one)")
    p.add_argument("--sample", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=0.2,
                   help="fraction of the run that is warm-up")
    p.add_argument("--workdir", help="keep logs here (default: temporary)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    # A stopped soak (kill, or Ctrl-C) still stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        d = args.workdir or tmp
        os.makedirs(d, exist_ok=True)
        report = run(d, minutes=args.minutes, rate=args.rate,
                     hold=args.hold, cloud=args.cloud, latency=args.latency,
                     sample=args.sample, warmup=args.warmup,
                     provider_rate=args.provider_rate,
                     terminated_ttl=args.terminated_ttl,
                     keep=bool(args.workdir))
    return 0 if report["ok"] else 1


def run(d: str, minutes: float = 30.0, rate: float = 20.0,
        hold: float = 2.0, cloud: str = "aws", latency: float = 1.5,
        sample: float = 15.0, warmup: float = 0.2, keep: bool = False,
        provider_rate: float | None = None, terminated_ttl: float = 120.0,
        out=None) -> dict:
    """One soak in ``d``: prints the samples and the summary to ``out``
    (stdout) and returns the report (``summarise``)."""
    out = out or sys.stdout
    seconds = minutes * 60
    in_flight = rate * (hold + latency + 10)
    max_servers = int(in_flight * 3) + 50
    with contextlib.ExitStack() as stack:
        zk = ZooKeeperServer(os.path.join(d, "zk"), tls=True,
                             fast_start=False, heap="512m").start()
        stack.callback(zk.stop)
        aws, boot, env = None, {}, {}
        if cloud == "aws":
            aws = start_aws(d, rate, latency, max_servers, terminated_ttl)
            stack.callback(aws.stop)
            boot, env = aws.bootstrap(), aws.env()
        cfg = os.path.join(d, "soak.yaml")
        provider_rate = provider_rate or call_rate(rate)
        launcher_config(cfg, zk, cloud, boot, rate=provider_rate,
                        max_servers=max_servers, latency=latency)
        procs, logs = spawn_launchers(cfg, env,
                                      [os.path.join(d, "launcher.log")])
        stack.callback(logs[0].close)
        stack.callback(stop_launchers, procs)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=15)
        stack.callback(client.stop)
        wait_started(client, procs[0], logs[0].name)
        print(f"soak: {rate:g} requests/s for {minutes:g} min through the "
              f"{'local AWS' if aws else 'fake adapter'}, hold {hold:g} s, "
              f"create latency {latency:g} s, provider rate "
              f"{provider_rate:g} calls/s; logs in {d}", file=out,
              flush=True)
        requester = Requester(client, rate, hold, "soak")
        result = play(requester, procs[0], zk, client, seconds, sample,
                      seconds * warmup, out, logs[0].name)
        drained = requester.drain(timeout=360)
        result["drained"] = drained
        result["leaked_nodes"] = nodes_left(client, timeout=120)
        result["leaked_instances"] = (instances_left(aws, timeout=60)
                                      if aws else 0)
        astats = aws.stats() if aws else {}
        report = summarise(requester, result, astats, seconds, warmup)
        print_report(report, d if keep else None, astats, out)
        return report


def start_aws(d: str, rate: float, latency: float, max_servers: int,
              terminated_ttl: float) -> LocalAWS:
    """The local AWS, without throttling: the soak is about leaks."""
    # vCPUs (t3.micro: 2) for every server, plus a minute of deleted
    # nodes whose instances a cached listing still shows (the launcher
    # counts them as unmanaged): the soak is about leaks, not quota.
    vcpus = 2.0 * (max_servers + rate * 60)
    return LocalAWS(run_instances_latency=latency, throttle=False,
                    quotas={"ec2": {"L-1216C47A": vcpus}},
                    workdir=os.path.join(d, "aws"),
                    terminated_ttl=terminated_ttl).start()


def call_rate(rate: float) -> float:
    """The provider's rate for ``rate`` requests/s: every node costs a
    create call (fake; batched RunInstances on AWS) and a CreateTags call
    (AWS), deletes are batched; three calls per node and ten more leave
    the launcher room to catch up after a slow second.  At the rate
    itself (one call per request) a backlog could never drain."""
    return 3 * rate + 10


def wait_started(client: KazooClient, proc, log: str) -> None:
    """Until the launcher registered its pool (it serves requests)."""
    registered = threading.Event()
    deadline = time.monotonic() + 60
    while True:
        registered.clear()
        if client.exists("/nodepool/components/pool",
                         watch=lambda e: registered.set()) and \
                client.get_children("/nodepool/components/pool"):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"launcher did not start, see {log}")
        registered.wait(0.5)


def play(requester: Requester, proc, zk: ZooKeeperServer,
         client: KazooClient, seconds: float, sample: float, warm: float,
         out, log_path: str) -> dict:
    """Submit for ``seconds`` on a feeder thread while sampling the
    launcher every ``sample`` seconds (one printed row each).  The CPU of
    every process of the soak is read at the first sample after ``warm``
    seconds and when submitting ends (the steady state's cost); the
    launcher's threads by family at the same two moments (which kind
    of thread a rise in the thread count is)."""
    own = {f"0x{client.client_id[0]:x}"}
    feeder = threading.Thread(target=requester.run, args=(seconds,),
                              name="zuul-feeder", daemon=True)
    t0, wall0 = time.monotonic(), time.time()
    steady = None      # (t, fulfilled, CPU by process) after warm-up
    feeder.start()
    samples: list[dict] = []
    print(f"{'t s':>7}{'RSS MB':>9}{'threads':>9}{'fds':>6}"
          f"{'watches':>9}{'done/s':>8}{'fulfilled':>11}{'open':>7}"
          f"{'CPU ms/req':>11}{'zk avg ms':>10}{'zk max ms':>10}"
          f"{'znodes':>8}", file=out, flush=True)
    last = t0
    zk_latency(zk.port)             # the counters start with the run
    last_cpu, last_done = proc_cpu_seconds(proc.pid), 0
    try:
        while feeder.is_alive():
            feeder.join(sample)
            if proc.poll() is not None:
                raise RuntimeError("launcher exited")
            now = time.monotonic()
            row = {"t": now - t0, **proc_figures(proc.pid),
                   "watches": session_watches(zk.port, own),
                   **zk_latency(zk.port)}
            with requester.lock:
                open_, fulfilled = len(requester.open), requester.fulfilled
            cpu_now = proc_cpu_seconds(proc.pid)
            row["cpu_ms_per_req"] = interval_cpu(last_cpu, cpu_now,
                                                 last_done, fulfilled)
            last_cpu, last_done = cpu_now, fulfilled
            samples.append(row)
            if steady is None and row["t"] >= warm:
                steady = (now, fulfilled, family_cpu(os.getpid()),
                          thread_families(proc.pid, log_path))
            print(f"{row['t']:>7.0f}{row['rss_mb']:>9.1f}"
                  f"{row['threads']:>9.0f}{row['fds']:>6.0f}"
                  f"{row['watches']:>9.0f}{requester.rate_since(last):>8.1f}"
                  f"{fulfilled:>11d}{open_:>7d}"
                  f"{row['cpu_ms_per_req']:>11.1f}{row['zk_avg_ms']:>10.1f}"
                  f"{row['zk_max_ms']:>10.0f}{row['znodes']:>8.0f}",
                  file=out, flush=True)
            last = now
    except BaseException:
        requester.stop.set()
        raise
    with requester.lock:
        backlog = len(requester.open) + requester.creating
        fulfilled = requester.fulfilled
    cpu, families = {}, (Counter(), Counter())
    if steady is not None:
        at, done, cpu0, threads0 = steady
        families = (threads0, thread_families(proc.pid, log_path))
        cpu = {"seconds": time.monotonic() - at,
               "fulfilled": fulfilled - done,
               "cpu_s": {name: used - cpu0.get(name, 0.0) for name, used
                         in family_cpu(os.getpid()).items()}}
    return {"samples": samples, "t0": t0, "wall0": wall0,
            "wall_end": time.time(), "backlog": backlog, "cpu": cpu,
            "thread_families": families}


def nodes_left(client: KazooClient, timeout: float) -> int:
    """Wait until the launcher deleted every node; the nodes left then."""
    changed = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        changed.clear()
        try:
            left = client.get_children(NODES,
                                       watch=lambda e: changed.set())
        except NoNodeError:
            return 0
        remaining = deadline - time.monotonic()
        if not left or remaining <= 0:
            return len(left)
        changed.wait(min(remaining, 1.0))


LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


def instances_left(aws: LocalAWS, timeout: float) -> int:
    """Instances the local AWS still runs once every node is gone (the
    launcher terminates before it deletes the node): leaked ones."""
    ec2 = aws.client("ec2")
    deadline = time.monotonic() + timeout
    while True:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}])
        live = sum(len(r["Instances"]) for page in pages
                   for r in page["Reservations"])
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(1.0)   # poll interval of the deadline loop


def summarise(requester: Requester, result: dict, astats: dict,
              seconds: float, warmup: float) -> dict:
    """The report: counts, latencies, the rate sustained after warm-up,
    CPU per request, growth of each figure and the stalls."""
    r = requester
    warm = seconds * warmup
    t0 = result["t0"]
    after = sum(1 for t in r.done_at if warm <= t - t0 <= seconds)
    lost = r.submitted - r.fulfilled - r.failed
    bins = timeline(result["wall0"], result["wall_end"], r.submitted_at,
                    r.fulfilled_at,
                    astats.get("run_instances", {}).get("instances", []))
    report = {
        "offered_per_s": r.rate, "seconds": seconds, "warmup_s": warm,
        "wall0": result["wall0"],
        "submitted": r.submitted, "fulfilled": r.fulfilled,
        "failed": r.failed, "errors": r.errors,
        "error_samples": list(r.error_samples), "lost": lost,
        "returned_nodes": len(r.returned), "drained": result["drained"],
        "leaked_nodes": result["leaked_nodes"],
        "leaked_instances": result["leaked_instances"],
        "backlog_at_end": result["backlog"],
        "sustained_per_s": after / max(1e-6, seconds - warm),
        "p50_s": percentile(r.latencies, 50),
        "p99_s": percentile(r.latencies, 99),
        "cpu": steady_cpu(result["cpu"]),
        "samples": result["samples"],
        "growth": {f: growth(result["samples"], warm, f) for f in FIGURES},
        "threads_by_family": result["thread_families"],
        "thread_families": families_changed(*result["thread_families"]),
        "timeline": bins, "stalls": stalls(bins),
    }
    report["ok"] = (lost == 0 and r.failed == 0 and r.errors == 0
                    and report["leaked_nodes"] == 0
                    and report["leaked_instances"] == 0
                    and all(g < 0.05 for g in report["growth"].values()))
    return report


def steady_cpu(cpu: dict) -> dict:
    """Per process, busiest first: CPU ms per request fulfilled after
    warm-up, and the cores it kept busy meanwhile."""
    if not cpu:
        return {}
    used = sorted(cpu["cpu_s"].items(), key=lambda kv: -kv[1])
    return {"ms_per_request": {name: 1000 * s / max(1, cpu["fulfilled"])
                               for name, s in used},
            "cores": {name: s / max(1e-6, cpu["seconds"])
                      for name, s in used}}


def print_report(rep: dict, keep: str | None, astats: dict, out) -> None:
    print(file=out)
    print(f"submitted {rep['submitted']}, fulfilled {rep['fulfilled']}, "
          f"failed {rep['failed']}, lost {rep['lost']} (harness errors "
          f"{rep['errors']}); leaked: {rep['leaked_nodes']} nodes, "
          f"{rep['leaked_instances']} instances; latency p50 "
          f"{rep['p50_s']:.2f} s, p99 {rep['p99_s']:.2f} s", file=out)
    for message in rep["error_samples"]:
        print(f"  error: {message}", file=out)
    print(f"sustained after warm-up: {rep['sustained_per_s']:.1f} "
          f"fulfilled/s of {rep['offered_per_s']:g} offered; "
          f"{rep['backlog_at_end']} open when submitting ended", file=out)
    cpu = rep["cpu"]
    if cpu:
        print(f"CPU after warm-up, per fulfilled request and in cores busy "
              f"({sum(cpu['ms_per_request'].values()):.1f} ms, "
              f"{sum(cpu['cores'].values()):.2f} cores in all): "
              + ", ".join(f"{name} {ms:.1f} ms {cpu['cores'][name]:.2f}"
                          for name, ms in cpu["ms_per_request"].items()),
              file=out)
    if keep:
        write_timeline(os.path.join(keep, "timeline.csv"), rep["timeline"])
    kept = f"; per-second timeline in {keep}/timeline.csv" if keep else ""
    found, bins = rep["stalls"], rep["timeline"]
    print(f"stalls (>= 2 s with requests open and none fulfilled{kept}): "
          f"{len(found) or 'none'}", file=out)
    for first, length in found[:5]:
        window = bins[first:first + length]
        print(f"  t {first}-{first + length} s: {length} s, "
              f"{window[0]['open']} open, "
              f"{sum(r['run_calls'] for r in window)} RunInstances "
              f"answered ({sum(r['launched'] for r in window)} instances)",
              file=out)
        # moto answers one call at a time: a long one holds the rest
        for slow in astats.get("slow_moto", []):
            at = slow["time"] - rep["wall0"]
            if first - 2 <= at - slow["seconds"] <= first + length:
                print(f"    {slow['action']} held moto "
                      f"{slow['seconds']:.1f} s, ending at t {at:.1f} s",
                      file=out)
    if astats:
        busiest = sorted(astats.get("moto", {}).items(),
                         key=lambda kv: -kv[1]["seconds"])[:6]
        print("local AWS: time in moto per action (calls, total s, max s): "
              + ", ".join(f"{a} {e['calls']} {e['seconds']:.0f} "
                          f"{e['max_s']:.2f}" for a, e in busiest), file=out)
    print(f"growth after {rep['warmup_s']:.0f} s of warm-up (first 3 "
          "samples against the last 3; target < 5 %):", file=out)
    for figure, g in rep["growth"].items():
        print(f"  {figure:<8} {g * 100:+6.1f} %", file=out)
    changed = rep["thread_families"]
    print("launcher threads by family, warm-up end → submitting ended: "
          + (", ".join(f"{name} {a} → {b}" for name, a, b in changed)
             if changed else "no change"), file=out)
    print("PASS" if rep["ok"] else "FAIL", file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
