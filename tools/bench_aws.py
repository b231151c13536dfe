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
- a 1000-node burst under the RunInstances call bucket (5 burst, 2/s) and
  instance bucket (1000 burst, 2/s), with one launcher and with three
  launcher processes on a 3-server ZooKeeper ensemble (target ≤ 15 s,
  no node or instance allocated twice), against the physical limit: the
  earliest the buckets let the calls of at most 50 instances start, plus
  one latency (9.0 s at 1.5 s);

and for each: instances per RunInstances call, TerminateInstances calls
per 100 deletes (target ≤ 3), throttled calls, seconds from the first
instance running to its node READY (target ≤ 2 s), launcher CPU per node.

    python -m tools.bench_aws [--quick] [--latency 1.5] [--only burst1000,rate2]
                              [--profile --workdir DIR]

``--profile`` records each launcher with py-spy (``pip install py-spy``)
while its burst is fulfilled; the raw stacks land in the workdir, and
``python -m tools.pyspy_top FILE`` prints where the time went.
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

from nodepool.driver.aws.adapter import MAX_LAUNCHES
from tools.bench_core import proc_cpu_seconds
from tools.fakeaws import LocalAWS
from tools.zookeeper import ZooKeeperEnsemble, ZooKeeperServer
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
                 zones=1, refuse_first_zone=False, launchers=1,
                 ensemble=False):
        self.name, self.rate, self.batch = name, rate, batch
        self.throttle, self.n, self.launch = throttle, n, launch
        self.zones, self.refuse_first_zone = zones, refuse_first_zone
        # ``launchers`` processes share the requests; ``ensemble``: on a
        # 3-server ZooKeeper ensemble instead of the one TLS server.
        self.launchers, self.ensemble = launchers, ensemble


def physical_limit(n: int, per_call: int, latency: float,
                   buckets: dict) -> float:
    """The earliest second the cloud could have started ``n`` instances
    asked for in calls of ``per_call`` at most: each call starts once the
    RunInstances call bucket and the instance bucket hold its tokens
    (both full at the start), and answers one latency later."""
    calls = buckets.get("run_instances") or {}
    instances = buckets.get("run_instances_resource") or {}
    last, asked, k = 0.0, 0, 0
    while asked < n:
        size = min(per_call, n - asked)
        asked += size
        k += 1
        at = 0.0
        if calls.get("enabled", False):
            at = max(at, (k - calls["burst"]) / calls["rate"])
        if instances.get("enabled", False):
            at = max(at, (asked - instances["burst"]) / instances["rate"])
        last = max(last, at)
    return last + latency


def allocated_twice(zuul: ZuulSim, ids: list[str]) -> dict:
    """Nodes handed to two requests, instances behind two nodes, and nodes
    whose ``allocated_to`` names another request."""
    owner: dict[str, str] = {}
    nodes_twice, wrong_owner, instance_of = [], [], {}
    instances_twice = []
    for rid in ids:
        for node_id in zuul.get_request(rid)["nodes"]:
            if node_id in owner:
                nodes_twice.append(node_id)
            owner[node_id] = rid
            node = zuul.get_node(node_id)
            if node.get("allocated_to") != rid:
                wrong_owner.append(node_id)
            external = node.get("external_id")
            instance = external.get("instance") if isinstance(
                external, dict) else external
            if instance in instance_of:
                instances_twice.append(instance)
            instance_of[instance] = node_id
    return {"nodes": nodes_twice, "instances": instances_twice,
            "owner": wrong_owner}


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
    shown = time.monotonic()
    with cond:
        while len(done) < len(ids):
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"{len(done)}/{len(ids)} requests done")
            # Progress every 5 s, not once per answer.
            if now - shown >= 5.0:
                print(f"    {len(done)}/{len(ids)} fulfilled", flush=True)
                shown = now
            cond.wait(min(deadline, shown + 5.0) - now)
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


def zookeeper_config(zk, chroot: str) -> dict:
    """The launcher's ZooKeeper part: the TLS server, or every member of
    a (plain TCP) ensemble."""
    if isinstance(zk, ZooKeeperEnsemble):
        return {"zookeeper-servers": [
            {"host": "127.0.0.1", "port": s.port, "chroot": chroot}
            for s in zk.servers]}
    return {"zookeeper-servers": [{"host": "127.0.0.1",
                                   "port": zk.secure_port,
                                   "chroot": chroot}],
            "zookeeper-tls": {"cert": zk.certs.client_cert,
                              "key": zk.certs.client_key, "ca": zk.certs.ca}}


def start_profilers(pids: list[int], workdir: str, name: str
                    ) -> list[subprocess.Popen]:
    """``py-spy record`` of each launcher (raw collapsed stacks), when
    py-spy is installed next to this interpreter."""
    exe = os.path.join(BIN, "py-spy")
    if not os.path.exists(exe):
        print("    (py-spy not installed: no profile)", flush=True)
        return []
    return [subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "50", "--format",
         "raw", "--nonblocking", "--output",
         os.path.join(workdir, f"{name}-{i}.pyspy.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i, pid in enumerate(pids)]


def stop_all(procs: list[subprocess.Popen], signum: int = signal.SIGTERM,
             timeout: float = 30.0) -> None:
    """Signal every process, then wait for each (killed past
    ``timeout``)."""
    for proc in procs:
        proc.send_signal(signum)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    # py-spy writes its recording on SIGINT
    stop_all(profilers, signal.SIGINT, timeout=60)



def spawn_launchers(cfg: str, env: dict, log_paths: list[str]
                    ) -> tuple[list[subprocess.Popen], list]:
    """One ``nodepool-launcher`` process per log path, all on ``cfg``,
    with ``env`` added to this process's environment."""
    procs, logs = [], []
    for path in log_paths:
        log = open(path, "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "nodepool-launcher"), "-f", "-c", cfg,
             "--no-webapp"], env=dict(os.environ, **env), stdout=log,
            stderr=subprocess.STDOUT))
    return procs, logs


def run_scenario(sc: Scenario, zk, aws, workdir,
                 profile: bool = False) -> dict:
    # A fresh moto per scenario: its DescribeInstances slows down with
    # every instance it ever held (terminated ones included).
    aws.reset()
    boot = aws.bootstrap()
    warm_up(aws, boot)
    # Room for every instance of the burst twice over (t3.micro: 2 vCPUs;
    # the deletes of one scenario may still run) in the
    # standard on-demand vCPU quota (640 by default: 320 instances).
    aws.configure(throttle=sc.throttle, launch=sc.launch, quotas={
        "ec2": {"L-1216C47A": float(max(640, 4 * sc.n))}})
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
    data = {**zookeeper_config(zk, chroot),
            "labels": [{"name": "bench"}],
            "providers": [provider_config(boot, sc.rate, sc.batch, sc.n,
                                          sc.zones)]}
    with open(cfg, "w") as f:
        yaml.safe_dump(data, f)
    procs, logs = spawn_launchers(
        cfg, aws.env(), [os.path.join(workdir, f"{sc.name}{suffix}.log")
                         for suffix in ([""] if sc.launchers == 1 else
                                        [f"-{i}" for i in
                                         range(sc.launchers)])])
    client = KazooClient(hosts=zk.hosts + chroot)
    client.start(timeout=15)
    profilers: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 60
        while not (client.exists("/nodepool/components/pool")
                   and len(client.get_children("/nodepool/components/pool"))
                   >= sc.launchers):
            dead = [log.name for p, log in zip(procs, logs)
                    if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"launcher did not start, see "
                                   f"{dead or [log.name for log in logs]}")
            time.sleep(0.1)
        aws.reset_stats()
        cpu0 = sum(proc_cpu_seconds(p.pid) for p in procs)
        if profile:
            profilers = start_profilers([p.pid for p in procs], workdir,
                                        sc.name)
        zuul = ZuulSim(client)
        t0 = time.time()
        ids = zuul.submit_many(["bench"], sc.n)
        done = wait_all(zuul, ids, timeout=600)
        fulfil_s = max(done.values()) - t0
        stop_profilers(profilers)
        profilers = []
        twice = allocated_twice(zuul, ids)
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
        cpu = sum(proc_cpu_seconds(p.pid) for p in procs) - cpu0
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
            # ... and from the EC2 buckets alone, in calls of the
            # launcher's largest size (with the buckets off: a latency).
            "bucket_limit_s": physical_limit(
                sc.n, MAX_LAUNCHES, aws_latency(aws),
                aws.config()["buckets"] if sc.throttle else {}),
            "launch": sc.launch,
            "refused_calls": refused_calls,
            "refuse": sc.refuse_first_zone,
            "launchers": sc.launchers, "ensemble": sc.ensemble,
            "twice": twice,
            "moto_s": sum(e["seconds"] for e in stats["moto"].values()),
            "moto_cpu_s": stats.get("moto_cpu_s"),
            "moto_top": sorted(((a, e["calls"], e["seconds"])
                                for a, e in stats["moto"].items()),
                               key=lambda t: -t[2])[:4],
            "describe_records": stats["describe_instances"]["instances"],
            # When each RunInstances answered (s after the submission)
            # and how many it started: under-filled or late calls.
            "calls_timeline": [(r["time"] - t0, r["launched"])
                               for r in sorted(records,
                                               key=lambda r: r["time"])],
        }
    finally:
        stop_profilers(profilers)
        stop_all(procs)
        for log in logs:
            log.close()
        client.stop()


def aws_latency(aws) -> float:
    return float((aws.config().get("latency") or {}).get("RunInstances", 0))


def burst_line(r: dict) -> str:
    """A burst's result: fulfil time against the limit, allocations made
    twice, and how busy the local AWS was (moto answers one call at a
    time: seconds in moto near the fulfil time mean the fake was the
    limit, not the launcher; moto's CPU seconds are what its work cost,
    while its seconds also count a busy machine's waits)."""
    twice = r["twice"]
    cpu = "?" if r["moto_cpu_s"] is None else f"{r['moto_cpu_s']:.1f} s"
    return (f"  {r['scenario']:<18} {r['launchers']} launcher(s), "
            f"fulfil {r['fulfil_s']:.1f} s, limit "
            f"{r['bucket_limit_s']:.1f} s, ÷limit "
            f"{r['fulfil_s'] / r['bucket_limit_s']:.2f}; "
            f"{r['run_calls']} calls, {r['throttled']} throttled; "
            f"allocated twice: {len(twice['nodes'])} nodes, "
            f"{len(twice['instances'])} instances, "
            f"{len(twice['owner'])} wrong owner; local AWS busy "
            f"{r['moto_s']:.1f} s in moto, {cpu} of its CPU "
            f"({r['describe_records']} instance records described)\n"
            "    moto's time by action (calls, s): " + ", ".join(
                f"{a} {calls} {secs:.1f}" for a, calls, secs in
                r["moto_top"]) +
            "\n    RunInstances answered (s: instances): " + " ".join(
                f"{at:.1f}:{n}" for at, n in r.get("calls_timeline", [])))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=1.5)
    p.add_argument("--quick", action="store_true",
                   help="fewer requests per scenario (a smoke run)")
    p.add_argument("--only", help="run only these scenarios (names, "
                   "comma-separated)")
    p.add_argument("--workdir", help="keep logs here (default: temporary)")
    p.add_argument("--profile", action="store_true",
                   help="record each launcher with py-spy while its "
                   "requests are fulfilled (raw stacks in the workdir)")
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
        # A 1000-node burst under EC2's RunInstances buckets: one
        # launcher, then three on a 3-server ensemble.
        Scenario("burst1000", 2, True, True, int(1000 * scale)),
        Scenario("burst1000-3x", 2, True, True, int(1000 * scale),
                 launchers=3, ensemble=True),
    ]
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.name for s in scenarios})
        if unknown:
            p.error(f"--only: no scenario named {', '.join(unknown)} "
                    f"(scenarios: {', '.join(s.name for s in scenarios)})")
        scenarios = [s for s in scenarios if s.name in wanted]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
        d = args.workdir or tmp
        os.makedirs(d, exist_ok=True)
        zk = ZooKeeperServer(os.path.join(d, "zk"), tls=True,
                             fast_start=False, heap="512m").start()
        aws = LocalAWS(run_instances_latency=args.latency,
                       workdir=os.path.join(d, "aws")).start()
        ensemble = None
        try:
            for sc in scenarios:
                print(f"== {sc.name}: rate {sc.rate}/s, batched create "
                      f"{'on' if sc.batch else 'off'}, EC2 buckets "
                      f"{'on' if sc.throttle else 'off'}, {sc.n} requests"
                      + (f", {sc.launchers} launchers" if sc.launchers > 1
                         else "")
                      + (", 3-server ensemble" if sc.ensemble else ""),
                      flush=True)
                if sc.ensemble and ensemble is None:
                    ensemble = ZooKeeperEnsemble(
                        os.path.join(d, "ensemble"), size=3).start()
                results.append(run_scenario(
                    sc, ensemble if sc.ensemble else zk, aws, d,
                    profile=args.profile))
                r = results[-1]
                print(f"   fulfilled in {r['fulfil_s']:.1f} s, "
                      f"{r['run_calls']} RunInstances calls", flush=True)
                if r["scenario"].startswith("burst"):
                    print(burst_line(r), flush=True)
        finally:
            if ensemble is not None:
                ensemble.stop()
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
    bursts = [r for r in results if r["scenario"].startswith("burst")]
    if bursts:
        print()
        print("bursts under the EC2 buckets (RunInstances 5 burst, 2/s; "
              "instances 1000 burst, 2/s): fulfil time against the "
              f"physical limit (calls of at most {MAX_LAUNCHES} at the "
              "buckets' pace, plus one latency)")
        for r in bursts:
            print(burst_line(r))
    print()
    print("targets: rate10 ÷rate ≥ 0.95; ec2-bucket-batch fulfil ≤ 8 s; "
          "ready-run ≤ 2 s; term/100 ≤ 3; partial30-batch fulfil ≤ 6 s, "
          "partial100-batch ≤ 15 s; zone-out-batch ≤ 15 s with ≤ 10 calls "
          "to the refused zone; burst1000 and burst1000-3x ≤ 15 s, none "
          "allocated twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
