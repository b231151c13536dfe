"""The seed's benchmark: our launcher against a local AWS with slow RunInstances.

Starts a real ZooKeeper, the local AWS (moto behind the EC2-like proxy:
injected RunInstances latency, optional EC2 token buckets) and, per
scenario, a fresh ``nodepool-launcher`` process; plays Zuul for N
single-node requests, then releases the nodes and waits for the deletes.

Scenarios (latency 1.5 s unless --latency):

- rate 2 and rate 10 without the EC2 buckets, batched create off and on:
  achieved instances/s ÷ configured rate (target ≥ 0.95 at rate 10 without
  batched create; upstream Nodepool 11 reaches 0.47 there);
- 100 requests under EC2's RunInstances call bucket (5 burst, 2/s), with
  batched create (target ≤ 8 s; upstream: 58 s) and without;
- partial fulfilment: a zone that starts one instance per RunInstances
  call whatever MaxCount asks (EC2 short of capacity), rate 10, 30 and 100
  requests (targets ≤ 6 s and ≤ 15 s; the physical limit is the calls at
  the rate plus one latency, about 4.5 s and 11.5 s);
- a zone without capacity: two pools in two subnets serve the label, the
  first subnet answers every create with InsufficientInstanceCapacity; 30
  requests (target ≤ 15 s with ≤ 10 create calls to the refused subnet);

and for each: instances per RunInstances call, TerminateInstances calls
per 100 deletes (target ≤ 3), throttled calls, seconds from the first
instance running to its node READY (target ≤ 2 s), launcher CPU per node.

    python -m tools.bench_aws [--quick] [--latency 1.5]
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

from tools.bench_core import proc_cpu_seconds
from tools.fakeaws import LocalAWS
from tools.zookeeper import ZooKeeperServer
from tools.zuulsim import ZuulSim

BIN = os.path.dirname(sys.executable)


def provider_config(boot: dict, rate: float, batch: bool, n: int,
                    zones: int = 1) -> dict:
    pools = [{"name": "main" if i == 0 else f"zone{i}", "max-servers": n * 2,
              "subnet-id": subnet,
              "security-group-id": boot["security_group_id"],
              "host-key-checking": False,
              "labels": [{"name": "bench", "cloud-image": "img",
                          "instance-type": "t3.micro",
                          "key-name": boot["key_name"]}]}
             for i, subnet in enumerate(boot["subnet_ids"][:zones])]
    return {
        "name": "bench-aws", "driver": "aws", "region-name": boot["region"],
        "rate": rate, "batch-creates": batch, "launch-timeout": 600,
        "cloud-images": [{"name": "img", "image-id": boot["image_id"],
                          "username": "ubuntu"}],
        "pools": pools,
    }


class Scenario:
    def __init__(self, name, rate, batch, throttle, n, launch="max",
                 zones=1, refuse_first_zone=False):
        self.name, self.rate, self.batch = name, rate, batch
        self.throttle, self.n, self.launch = throttle, n, launch
        self.zones, self.refuse_first_zone = zones, refuse_first_zone


def wait_all(zuul: ZuulSim, ids: list[str], timeout: float) -> dict:
    done: dict[str, float] = {}
    cond = threading.Condition()

    def watcher(rid):
        def watch(data, stat):
            if data is None:
                return False
            if json.loads(data).get("state") in ("fulfilled", "failed"):
                with cond:
                    done.setdefault(rid, time.time())
                    cond.notify_all()
                return False
            return True
        return watch
    for rid in ids:
        zuul.client.DataWatch(f"/nodepool/requests/{rid}", watcher(rid))
    deadline = time.monotonic() + timeout
    with cond:
        while len(done) < len(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(done)}/{len(ids)} requests done")
            cond.wait(min(left, 5.0))
            print(f"    {len(done)}/{len(ids)} fulfilled", flush=True)
    return done


def warm_up(aws, boot) -> None:
    """One untagged instance started and terminated before the clock runs:
    moto's first RunInstances after a reset loads its instance catalogue
    (~0.4 s, holding every call behind it), which EC2 never does."""
    ec2 = aws.client("ec2", region=boot["region"])
    answer = ec2.run_instances(ImageId=boot["image_id"], MinCount=1,
                               MaxCount=1, InstanceType="t3.micro",
                               SubnetId=boot["subnet_ids"][0])
    ec2.terminate_instances(
        InstanceIds=[i["InstanceId"] for i in answer["Instances"]])


def run_scenario(sc: Scenario, zk, aws, workdir) -> dict:
    # A fresh moto per scenario: its DescribeInstances slows down with
    # every instance it ever held (terminated ones included).
    aws.reset()
    boot = aws.bootstrap()
    warm_up(aws, boot)
    aws.configure(throttle=sc.throttle, launch=sc.launch)
    if sc.refuse_first_zone:
        # The first zone has no capacity for the whole run.
        aws.inject_fault("InsufficientInstanceCapacity", count=None,
                         subnet=boot["subnet_ids"][0])
    cfg = os.path.join(workdir, f"{sc.name}.yaml")
    chroot = f"/bench-{sc.name}"
    zkc = KazooClient(hosts=zk.hosts)
    zkc.start(timeout=15)
    zkc.ensure_path(chroot)
    zkc.stop()
    data = {"zookeeper-servers": [{"host": "127.0.0.1", "port": zk.secure_port,
                                   "chroot": chroot}],
            "zookeeper-tls": {"cert": zk.certs.client_cert,
                              "key": zk.certs.client_key, "ca": zk.certs.ca},
            "labels": [{"name": "bench"}],
            "providers": [provider_config(boot, sc.rate, sc.batch, sc.n,
                                          sc.zones)]}
    with open(cfg, "w") as f:
        yaml.safe_dump(data, f)
    env = dict(os.environ, **aws.env())
    log = open(os.path.join(workdir, f"{sc.name}.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "nodepool-launcher"), "-f",
                             "-c", cfg, "--no-webapp"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    client = KazooClient(hosts=zk.hosts + chroot)
    client.start(timeout=15)
    try:
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool")
                   and client.get_children("/nodepool/components/pool")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"launcher did not start, see {log.name}")
            time.sleep(0.1)
        aws.reset_stats()
        cpu0 = proc_cpu_seconds(proc.pid)
        zuul = ZuulSim(client)
        t0 = time.time()
        ids = [zuul.submit(["bench"]) for _ in range(sc.n)]
        done = wait_all(zuul, ids, timeout=600)
        fulfil_s = max(done.values()) - t0
        stats = aws.stats()
        refused_calls = sum(stats.get("faults", {}).get(
            "RunInstances", {}).values())
        aws.clear_faults()
        records = [r for r in stats["run_instances"]["instances"]
                   if r["outcome"] == "ok"]
        nodes = []
        for rid in ids:
            req = zuul.get_request(rid)
            assert req["state"] == "fulfilled", req
            nodes += req["nodes"]
        ready_times = sorted(zuul.get_node(n)["state_time"] for n in nodes)
        first_running = min(r["time"] for r in records)
        ends = sorted(r["time"] for r in records)
        launched = sum(r["launched"] for r in records)
        if sc.batch:
            # (Measured from the submission, latency included, as every
            # earlier table of this benchmark was.)
            span = max(ends[-1] - t0, 1e-6)
            inst_rate = launched / span
        else:
            # steady state: spacing between successive call completions
            inst_rate = (len(ends) - 1) / max(ends[-1] - ends[0], 1e-6)
        throttled = sum(stats["throttled"].values())
        # deletes
        aws.reset_stats()
        for rid in ids:
            zuul.accept(rid)
        zuul.release(nodes)
        for node_id in nodes:
            zuul.wait_node_gone(node_id, timeout=300)
        dstats = aws.stats()
        cpu = proc_cpu_seconds(proc.pid) - cpu0
        return {
            "scenario": sc.name, "rate": sc.rate, "batch": sc.batch,
            "throttle": sc.throttle, "n": sc.n,
            "inst_per_s": inst_rate, "ratio": inst_rate / sc.rate,
            "run_calls": len(records),
            "inst_per_call": launched / max(1, len(records)),
            "fulfil_s": fulfil_s,
            "first_ready_after_running_s": ready_times[0] - first_running,
            "terminate_per_100": 100 * dstats["calls"].get(
                "TerminateInstances", 0) / len(nodes),
            "throttled": throttled + sum(dstats["throttled"].values()),
            "cpu_ms_per_node": 1000 * cpu / len(nodes),
            # The physical limit of a burst: every call the cloud needs
            # (n / instances per call) at the rate, plus one latency.
            "limit_s": (len(records) / sc.rate) + aws_latency(aws),
            "launch": sc.launch,
            "refused_calls": refused_calls,
            "refuse": sc.refuse_first_zone,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        client.stop()


def aws_latency(aws) -> float:
    return float((aws.config().get("latency") or {}).get("RunInstances", 0))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=1.5)
    p.add_argument("--quick", action="store_true",
                   help="fewer requests per scenario (a smoke run)")
    p.add_argument("--only", help="run only scenarios whose name contains "
                   "this")
    p.add_argument("--workdir", help="keep logs here (default: temporary)")
    args = p.parse_args(argv)
    scale = 0.3 if args.quick else 1.0
    scenarios = [
        Scenario("rate2", 2, False, False, int(40 * scale)),
        Scenario("rate2-batch", 2, True, False, int(40 * scale)),
        Scenario("rate10", 10, False, False, int(100 * scale)),
        Scenario("rate10-batch", 10, True, False, int(100 * scale)),
        Scenario("ec2-bucket-batch", 2, True, True, 100),
        Scenario("ec2-bucket", 2, False, True, int(100 * scale)),
        # A zone short of capacity: EC2 answers every batch with one
        # instance ("as many as it can", down to MinCount).
        Scenario("partial30-batch", 10, True, False, 30, launch="min"),
        Scenario("partial100-batch", 10, True, False, 100, launch="min"),
        # Two zones serve the label; the first answers every create with
        # InsufficientInstanceCapacity for the whole run.
        Scenario("zone-out-batch", 10, True, False, 30, zones=2,
                 refuse_first_zone=True),
    ]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
        d = args.workdir or tmp
        os.makedirs(d, exist_ok=True)
        zk = ZooKeeperServer(os.path.join(d, "zk"), tls=True,
                             fast_start=False, heap="512m").start()
        aws = LocalAWS(run_instances_latency=args.latency,
                       workdir=os.path.join(d, "aws")).start()
        try:
            for sc in scenarios:
                print(f"== {sc.name}: rate {sc.rate}/s, batched create "
                      f"{'on' if sc.batch else 'off'}, EC2 buckets "
                      f"{'on' if sc.throttle else 'off'}, {sc.n} requests",
                      flush=True)
                results.append(run_scenario(sc, zk, aws, d))
        finally:
            aws.stop()
            zk.stop()
    print()
    print(f"RunInstances latency {args.latency}s")
    head = (f"{'scenario':<18}{'inst/s':>8}{'÷rate':>7}{'inst/call':>10}"
            f"{'fulfil s':>9}{'ready-run s':>12}{'term/100':>9}"
            f"{'throttled':>10}{'cpu ms/node':>12}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['scenario']:<18}{r['inst_per_s']:>8.2f}{r['ratio']:>7.2f}"
              f"{r['inst_per_call']:>10.1f}{r['fulfil_s']:>9.1f}"
              f"{r['first_ready_after_running_s']:>12.2f}"
              f"{r['terminate_per_100']:>9.1f}{r['throttled']:>10d}"
              f"{r['cpu_ms_per_node']:>12.1f}")
    partial = [r for r in results if r["launch"] == "min"]
    if partial:
        print()
        print("partial fulfilment (EC2 starts one instance per call): "
              "fulfil time against the physical limit (calls ÷ rate + "
              "one latency)")
        for r in partial:
            print(f"  {r['scenario']:<18} fulfil {r['fulfil_s']:.1f} s, "
                  f"limit {r['limit_s']:.1f} s, "
                  f"÷limit {r['fulfil_s'] / r['limit_s']:.2f}, "
                  f"{r['run_calls']} calls")
    refused = [r for r in results if r["refuse"]]
    if refused:
        print()
        print("a zone without capacity (two zones serve the label):")
        for r in refused:
            print(f"  {r['scenario']:<18} fulfil {r['fulfil_s']:.1f} s, "
                  f"{r['refused_calls']} create calls to the refused zone, "
                  f"limit {r['limit_s']:.1f} s, "
                  f"÷limit {r['fulfil_s'] / r['limit_s']:.2f}")
    print()
    print("targets: rate10 ÷rate ≥ 0.95; ec2-bucket-batch fulfil ≤ 8 s; "
          "ready-run ≤ 2 s; term/100 ≤ 3; partial30-batch fulfil ≤ 6 s, "
          "partial100-batch ≤ 15 s; zone-out-batch ≤ 15 s with ≤ 10 calls "
          "to the refused zone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
