"""Command line of the fault suite (see ``tools/faults/__init__.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile

from tools.fakeaws import LocalAWS
from tools.faults.harness import RestartableZooKeeper, Round, RoundResult
from tools.faults.scenarios import SCENARIOS
from tools.zookeeper import ZooKeeperEnsemble


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tools.faults",
                                description="kill -9, ZooKeeper restarts "
                                "and cloud errors during request bursts")
    p.add_argument("--rounds", type=int, default=20,
                   help="kill -9 rounds (default: %(default)s)")
    p.add_argument("--requests", type=int, default=100,
                   help="requests per burst (default: %(default)s)")
    p.add_argument("--zk-rounds", type=int, default=3,
                   help="ZooKeeper restart rounds (default: %(default)s)")
    p.add_argument("--ensemble-rounds", type=int, default=3,
                   help="rounds killing one server of a 3-server ensemble "
                   "(default: %(default)s)")
    p.add_argument("--fault-rounds", type=int, default=3,
                   help="cloud-error rounds (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="2 kill rounds x 20 requests, 1 ZooKeeper restart, "
                   "1 ensemble-member kill, 1 cloud-error round")
    p.add_argument("--seed", type=int, help="RNG seed (default: random)")
    p.add_argument("--clean-wait", type=float, default=90.0,
                   help="seconds the launcher gets to remove leftovers")
    p.add_argument("--done-wait", type=float, default=180.0,
                   help="seconds for every request to be fulfilled or "
                   "failed; later ones count as lost")
    p.add_argument("--only", choices=sorted(SCENARIOS))
    p.add_argument("--workdir", help="keep logs here")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 2, 20
        args.zk_rounds = min(args.zk_rounds, 1)
        args.ensemble_rounds = min(args.ensemble_rounds, 1)
        args.fault_rounds = min(args.fault_rounds, 1)
        args.clean_wait = min(args.clean_wait, 30.0)
        args.done_wait = min(args.done_wait, 90.0)
    return args


def table(results: list[RoundResult]) -> tuple[str, bool]:
    head = (f"{'scenario':<14}{'rounds':>7}{'requests':>9}{'fulfilled':>10}"
            f"{'failed':>7}{'lost':>5}{'leaked':>7}{'alloc twice':>12}"
            f"{'duplicated':>11}{'nodes left':>11}{'recover s':>10}")
    lines = [head, "-" * len(head)]
    bad = False
    for name in SCENARIOS:
        rs = [r for r in results if r.scenario == name]
        if not rs:
            continue
        row = dict(lost=sum(len(r.lost) for r in rs),
                   leaked=sum(len(r.leaked) for r in rs),
                   twice=sum(len(r.twice) for r in rs),
                   dup=sum(len(r.duplicated) for r in rs),
                   left=sum(len(r.nodes_left) for r in rs))
        bad |= any(v for k, v in row.items() if k != "left")
        lines.append(
            f"{name:<14}{len(rs):>7}{sum(r.requests for r in rs):>9}"
            f"{sum(r.fulfilled for r in rs):>10}"
            f"{sum(r.failed for r in rs):>7}{row['lost']:>5}"
            f"{row['leaked']:>7}{row['twice']:>12}{row['dup']:>11}"
            f"{row['left']:>11}{max(r.recover_s for r in rs):>10.1f}")
    return "\n".join(lines), bad


def report(res: RoundResult) -> None:
    status = "BAD" if res.bad else "ok"
    print(f"  {res.scenario} round {res.index}: {status} "
          f"fulfilled {res.fulfilled} failed {res.failed} "
          f"recover {res.recover_s:.1f}s; {'; '.join(res.notes)}",
          flush=True)
    for what in ("lost", "leaked", "twice", "duplicated", "nodes_left"):
        value = getattr(res, what)
        if value:
            print(f"    {what}: {value}", flush=True)


def run(args, workdir: str) -> list[RoundResult]:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    # The long kill -9 series last: an interrupted run still covers all.
    plan = [("zk-restart", args.zk_rounds),
            ("ensemble", args.ensemble_rounds),
            ("cloud-errors", args.fault_rounds), ("kill9", args.rounds)]
    plan = [(n, c) for n, c in plan if c > 0]
    if args.only:
        plan = [(n, c) for n, c in plan if n == args.only]
    zk = RestartableZooKeeper(os.path.join(workdir, "zk"), tls=True)
    zk.start()
    aws = LocalAWS(run_instances_latency=0.5, throttle=False,
                   workdir=os.path.join(workdir, "aws")).start()
    results: list[RoundResult] = []
    servers = {"": zk}
    try:
        if any(n == "ensemble" for n, _ in plan):
            # Its own three JVMs (plain TCP), only while its rounds run.
            servers["ensemble"] = ZooKeeperEnsemble(
                os.path.join(workdir, "ensemble"), size=3)
        _rounds(plan, args, servers, aws, workdir, rng, results)
    except KeyboardInterrupt:
        # Ctrl-C: the table still shows every round that finished.
        print("interrupted", flush=True)
    finally:
        aws.stop()
        for server in servers.values():
            server.stop()
    return results


def _rounds(plan, args, servers, aws, workdir, rng, results) -> None:
    for name, count in plan:
        print(f"== {name}: {count} rounds x {args.requests} requests",
              flush=True)
        zk = servers.get(name, servers[""])
        if name in servers:
            zk.start()
        try:
            _series(name, count, args, zk, aws, workdir, rng, results)
        finally:
            if name in servers:
                zk.stop()
                del servers[name]


def _series(name, count, args, zk, aws, workdir, rng, results) -> None:
    for index in range(count):
        rnd = Round(zk, aws, workdir, name, index, args.requests)
        try:
            rnd.setup()
            res = SCENARIOS[name](rnd, rng, args.done_wait,
                                  args.clean_wait)
        finally:
            rnd.close()
        report(res)
        results.append(res)


def main(argv=None) -> int:
    args = parse_args(argv)
    # The observer's reconnects during a ZooKeeper restart are expected.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        results = run(args, workdir)
    text, bad = table(results)
    print()
    print(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
