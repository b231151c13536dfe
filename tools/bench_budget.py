"""Benchmark: launchers sharing one AWS provider's rate budget (issue 18).

Starts a real ZooKeeper, the local AWS (moto behind the EC2-like proxy,
RunInstances latency 1.5 s) and ``--launchers`` (3) ``nodepool-launcher``
processes with the same provider (``rate`` 6, lone creates,
``max-concurrency`` of a sixth of the burst each, so the rest waits in
ZooKeeper and every launcher keeps a backlog); plays Zuul for ``--requests`` (90) single-node requests and,
once ``--kill-after`` (a quarter) of the RunInstances calls have arrived,
kills one launcher with SIGKILL (``--no-kill``: not).

The local cloud stamps each RunInstances call's arrival; printed:

- calls and calls/s per 5 s window from the first call, with the ratio to
  the budget, and the busiest 5 s window anywhere (target <= 1.05 x rate);
- the combined rate while the burst lasts: before the kill and in the 5 s
  from the survivors' recovery (target >= 0.9 x rate);
- how long after the kill the survivors' calls first reached 0.9 x rate
  over a 2 s window (target <= 10 s): the killed launcher's share in use;
  and when the survivors' budget records first said they had it;
- from the records sampled during the burst: how often each launcher
  said its write limiter was busy, and its mean share.

The survivors can only use the share while they have requests to launch:
the killed launcher's own requests come back only once its session
expires (``zookeeper-timeout``, 10 s), so each launcher takes at most a
sixth of the burst at a time and the rest waits for whoever has room.

    python -m tools.bench_budget [--launchers 3] [--rate 6] [--requests 90]
                                 [--latency 1.5] [--kill-after 0.25]
                                 [--no-kill] [--workdir D] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from nodepool.zk.paths import rate_budget_dir
from tools.bench_aws import spawn_launchers, warm_up
from tools.fakeaws import LocalAWS
from tools.zookeeper import ZooKeeperServer
from tools.zuulsim import ZuulSim

PROVIDER = "bench-aws"
BUDGET_DIR = rate_budget_dir(PROVIDER)
WINDOW = 5.0
RECOVERY_WINDOW = 2.0


def provider_config(boot: dict, rate: float, n: int, launchers: int
                    ) -> dict:
    return {
        "name": PROVIDER, "driver": "aws", "region-name": boot["region"],
        "rate": rate, "batch-creates": False, "launch-timeout": 600,
        # Half a share of the burst each: the rest waits in ZooKeeper for
        # whichever launcher has room, so no launcher runs dry early and
        # the survivors of a kill keep a backlog.
        "max-concurrency": max(1, n // launchers // 2),
        "cloud-images": [{"name": "img", "image-id": boot["image_id"],
                          "username": "ubuntu"}],
        "pools": [{"name": "main", "max-servers": n * 2,
                   "subnet-id": boot["subnet_ids"][0],
                   "security-group-id": boot["security_group_id"],
                   "host-key-checking": False,
                   "labels": [{"name": "bench", "cloud-image": "img",
                               "instance-type": "t3.micro",
                               "key-name": boot["key_name"]}]}],
    }


def wait(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a launcher exited ({proc.returncode})"
                                   f" while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        threading.Event().wait(0.1)


def budget_beating(client, count: int, provider: str = PROVIDER):
    """A predicate: ``count`` budget records of ``provider``, each
    rewritten twice since first seen (a beat writes, then reads: every
    launcher has read the others and set its share)."""
    first: dict[str, int] = {}
    path = rate_budget_dir(provider)

    def check() -> bool:
        try:
            names = client.get_children(path)
        except NoNodeError:
            return False
        if len(names) != count:
            first.clear()
            return False
        done = 0
        for name in names:
            stat = client.exists(f"{path}/{name}")
            if stat is None:
                return False
            first.setdefault(name, stat.version)
            done += stat.version >= first[name] + 2
        return done == count
    return check


def arrivals(aws) -> list[float]:
    return sorted(r["started"] for r in
                  aws.stats()["run_instances"]["instances"]
                  if r["outcome"] == "ok")


def busiest(times: list[float], width: float) -> int:
    """The most of the sorted ``times`` in any ``width``-second window."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def recovery_after(times: list[float], kill: float, rate: float
                   ) -> float | None:
    """Seconds from ``kill`` to the end of the first 2 s window of calls
    that arrived after it holding >= 0.9 x rate; None if none did."""
    after = [t for t in times if t > kill]
    need = 0.9 * rate * RECOVERY_WINDOW
    lo = 0
    for hi, t in enumerate(after):
        while t - after[lo] >= RECOVERY_WINDOW:
            lo += 1
        if hi - lo + 1 >= need and t - kill >= RECOVERY_WINDOW:
            return t - kill
    return None


def rate_between(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    if len(inside) < 2 or end <= start:
        return 0.0
    return (len(inside) - 1) / (inside[-1] - inside[0])


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        d = args.workdir or tmp
        os.makedirs(d, exist_ok=True)
        zk = ZooKeeperServer(os.path.join(d, "zk"), tls=True,
                             fast_start=False, heap="512m").start()
        aws = LocalAWS(run_instances_latency=args.latency, throttle=False,
                       workdir=os.path.join(d, "aws")).start()
        try:
            return burst(args, zk, aws, d)
        finally:
            aws.stop()
            zk.stop()


def burst(args, zk, aws, d) -> dict:
    aws.reset()
    boot = aws.bootstrap()
    warm_up(aws, boot)
    # The budget is what is measured: no EC2 token buckets behind it.
    aws.configure(throttle=False)
    chroot = "/bench-budget"
    root = KazooClient(hosts=zk.hosts)
    root.start(timeout=15)
    root.ensure_path(chroot)
    root.stop()
    cfg = os.path.join(d, "budget.yaml")
    data = {"zookeeper-servers": [{"host": "127.0.0.1",
                                   "port": zk.secure_port,
                                   "chroot": chroot}],
            "zookeeper-tls": {"cert": zk.certs.client_cert,
                              "key": zk.certs.client_key, "ca": zk.certs.ca},
            "labels": [{"name": "bench"}],
            "providers": [provider_config(boot, args.rate, args.requests,
                                          args.launchers)]}
    with open(cfg, "w") as f:
        yaml.safe_dump(data, f)
    procs, logs = spawn_launchers(
        cfg, aws.env(), [os.path.join(d, f"launcher{i}.log")
                         for i in range(args.launchers)])
    client = KazooClient(hosts=zk.hosts + chroot)
    client.start(timeout=15)
    try:
        wait(budget_beating(client, args.launchers), 90,
             f"{args.launchers} launchers in the rate budget", procs)
        aws.reset_stats()
        zuul = ZuulSim(client)
        kill_at: list[float] = []
        if not args.no_kill:
            killer = threading.Thread(
                target=kill_when, daemon=True,
                args=(aws, procs[0], int(args.requests * args.kill_after),
                      kill_at))
            killer.start()
        sampler = BudgetSampler(client)
        ids = [zuul.submit(["bench"]) for _ in range(args.requests)]
        done = set()

        def all_done() -> bool:
            for rid in ids:
                if rid not in done and (zuul.get_request(rid) or {}).get(
                        "state") in ("fulfilled", "failed"):
                    done.add(rid)
            return len(done) == len(ids)
        wait(all_done, 600, "every request fulfilled", procs[1:])
        sampler.stop()
        times = arrivals(aws)
        failed = [r for r in ids
                  if (zuul.get_request(r) or {}).get("state") != "fulfilled"]
        throttled = sum(aws.stats()["throttled"].values())
        kill = kill_at[0] if kill_at else None
        return {"times": times, "kill": kill,
                "failed": len(failed), "throttled": throttled,
                "members": sampler.summary(),
                "shares_whole": (sampler.survivors_whole(kill)
                                 if kill is not None else None)}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        client.stop()


class BudgetSampler:
    """Reads every budget record twice a second during the burst: how
    often each member said its write limiter was busy, and its share."""

    def __init__(self, client) -> None:
        self.client = client
        self.samples: dict[str, list[tuple[float, bool, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                names = self.client.get_children(BUDGET_DIR)
            except NoNodeError:
                continue
            for name in names:
                try:
                    data, _ = self.client.get(f"{BUDGET_DIR}/{name}")
                except NoNodeError:
                    continue
                doc = json.loads(data)
                write = [n for n in doc.get("rates", {})
                         if not n.endswith("-read")]
                if not write:
                    continue
                self.samples.setdefault(name[-6:], []).append(
                    (time.time(), write[0] in doc.get("busy", []),
                     doc.get("shares", {}).get(write[0], 1.0)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, tuple[float, float, int]]:
        """Member -> (busy fraction, mean write share, samples)."""
        return {m: (sum(b for _, b, _ in v) / len(v),
                    sum(x for _, _, x in v) / len(v), len(v))
                for m, v in self.samples.items()}

    def survivors_whole(self, kill: float) -> float | None:
        """When, after ``kill``, the records of the launchers still
        beating first said their shares add up to >= 0.9 (the killed
        one's record is the first to go: with its session)."""
        last = {m: v[-1][0] for m, v in self.samples.items()}
        dead = min(last, key=last.get)
        times = sorted({t for m, v in self.samples.items() if m != dead
                        for t, _, _ in v if t > kill})
        for t in times:
            now = [next((x for u, _, x in reversed(v) if u <= t), 0.0)
                   for m, v in self.samples.items() if m != dead]
            if sum(now) >= 0.9:
                return t
        return None


def kill_when(aws, proc, calls: int, out: list) -> None:
    """SIGKILL ``proc`` once ``calls`` RunInstances calls have arrived."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(arrivals(aws)) >= calls:
            out.append(time.time())
            proc.kill()
            return
        threading.Event().wait(0.05)


def report(args, result: dict) -> None:
    times, kill, rate = result["times"], result["kill"], args.rate
    if not times:
        print("no RunInstances call arrived")
        return
    t0 = times[0]
    print(f"{args.launchers} launchers, provider rate {rate:g}/s (one "
          f"budget), {args.requests} requests, RunInstances latency "
          f"{args.latency}s, {len(times)} calls, {result['failed']} "
          f"requests failed, {result['throttled']} calls throttled")
    print()
    print(f"{'window s':>12}{'calls':>7}{'calls/s':>9}{'÷budget':>9}")
    start = t0
    while start <= times[-1]:
        n = sum(1 for t in times if start <= t < start + WINDOW)
        note = ""
        if kill is not None and start <= kill < start + WINDOW:
            note = f"   launcher killed at {kill - t0:.1f} s"
        print(f"{start - t0:>5.0f}-{start - t0 + WINDOW:<6.0f}{n:>7}"
              f"{n / WINDOW:>9.2f}{n / WINDOW / rate:>9.2f}{note}")
        start += WINDOW
    top = busiest(times, WINDOW)
    print()
    print(f"busiest {WINDOW:g} s window (sliding): {top} calls = "
          f"{top / WINDOW:.2f}/s = {top / WINDOW / rate:.2f} × budget "
          f"(target ≤ {1.05 * rate:.2f}/s)")
    print("budget records during the burst (write limiter): "
          + ", ".join(f"…{m} busy {b:.0%} share {x:.2f} ({n} samples)"
                      for m, (b, x, n) in sorted(result["members"].items())))
    whole = rate_between(times, t0, times[-1])
    print(f"whole burst: {whole:.2f}/s = {whole / rate:.2f} × budget")
    if kill is None:
        return
    before = rate_between(times, t0, kill)
    print(f"before the kill: {before:.2f}/s = {before / rate:.2f} × budget "
          "(target ≥ 0.9)")
    whole_at = result["shares_whole"]
    if whole_at is not None:
        print(f"survivors' records said they share the whole rate "
              f"{whole_at - kill:.1f} s after the kill")
    took = recovery_after(times, kill, rate)
    if took is None:
        print("the survivors never reached 0.9 × budget after the kill")
        return
    start = kill + took - RECOVERY_WINDOW
    after = sum(1 for t in times if start <= t < start + WINDOW) / WINDOW
    print(f"survivors in the {WINDOW:g} s from their recovery: {after:.2f}/s"
          f" = {after / rate:.2f} × budget (target ≥ 0.9)")
    print(f"survivors used the killed launcher's share {took:.1f} s after "
          f"the kill (first {RECOVERY_WINDOW:g} s window of their calls at "
          "≥ 0.9 × budget; target ≤ 10 s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launchers", type=int, default=3)
    p.add_argument("--rate", type=float, default=6.0)
    p.add_argument("--requests", type=int, default=90)
    p.add_argument("--latency", type=float, default=1.5)
    p.add_argument("--kill-after", type=float, default=0.25,
                   help="kill a launcher once this fraction of the calls "
                   "has arrived (default 0.25)")
    p.add_argument("--no-kill", action="store_true",
                   help="kill no launcher mid-burst")
    p.add_argument("--workdir", help="keep logs here (default: temporary)")
    p.add_argument("--json", action="store_true",
                   help="also print the arrival times as JSON")
    args = p.parse_args(argv)
    if args.launchers < 1 or (args.launchers < 2 and not args.no_kill):
        p.error("--launchers: at least 2 (1 with --no-kill)")
    result = run(args)
    report(args, result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
