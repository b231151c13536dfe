"""Launchers serving one AWS provider share its ``rate`` (issue 18, 1).

Two real ``nodepool-launcher -f`` processes with the same provider
(``rate: 4``, lone creates) on one ZooKeeper and the local AWS; 40
single-node requests.  The local cloud times every RunInstances call, so
the combined rate is measured where the account's limit would apply:

- no 5 s window of arrivals holds more than the rate allows (with a tolerance of one
  call per launcher: each one's bucket starts full); without the shared
  budget the two launchers would send up to twice the rate;
- the two together use the budget while the burst lasts (>= 0.8 x rate
  from the first call to the last): an idle share is not wasted;
- both launchers launched nodes, so the rate really was shared.
"""

from __future__ import annotations

import json

import pytest
import yaml

from nodepool.zk.paths import rate_budget_dir
from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_processes import (
    NODES, LauncherProcess, children, wait_pools)

pytestmark = pytest.mark.functional

RATE = 4.0
LATENCY = 0.5
REQUESTS = 40


def write_config(env, aws) -> str:
    path = env.write_config([aws.provider(
        pool_extra={"max-servers": 100}, rate=RATE,
        **{"batch-creates": False, "max-concurrency": REQUESTS // 2})])
    with open(path) as f:
        data = yaml.safe_load(f)
    data["zookeeper-timeout"] = 4.0
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def members_beating(client, count: int):
    """Wait until ``count`` budget records exist and each was rewritten
    twice since (a beat writes, then reads: every launcher has read the
    others and set its share)."""
    first: dict[str, int] = {}

    def beating():
        path = rate_budget_dir("aws")
        names = children(client, path)
        if len(names) != count:
            first.clear()
            return False
        moved = 0
        for name in names:
            stat = client.exists(f"{path}/{name}")
            if stat is None:
                return False
            first.setdefault(name, stat.version)
            moved += stat.version >= first[name] + 2
        return moved == count
    wait_for(beating, timeout=30, what=f"{count} rate budget members beating")


def window_max(times: list[float], width: float) -> int:
    """The most calls in any ``width``-second window."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def warm_up(aws) -> None:
    """One instance started and terminated before the clock runs: moto's
    first RunInstances loads its catalogue and holds the calls behind it,
    which would bunch their recorded times."""
    ec2 = aws.ec2()
    answer = ec2.run_instances(ImageId=aws.boot["image_id"], MinCount=1,
                               MaxCount=1, InstanceType="t3.micro",
                               SubnetId=aws.boot["subnet_id"])
    ec2.terminate_instances(
        InstanceIds=[i["InstanceId"] for i in answer["Instances"]])


def test_two_launchers_stay_within_one_rate(env, aws, tmp_path):
    warm_up(aws)
    aws.local.configure(run_instances_latency=LATENCY)
    config = write_config(env, aws)
    client, zuul = env.client, env.zuul
    procs = [LauncherProcess(config, str(tmp_path / f"launcher{i}.log"))
             for i in range(2)]
    try:
        wait_pools(client, 2, procs)
        members_beating(client, 2)
        aws.local.reset_stats()
        rids = [zuul.submit(["small"]) for _ in range(REQUESTS)]
        for rid in rids:
            req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=90)
            assert req["state"] == "fulfilled", (rid, req)
        stats = aws.local.stats()
        launchers = set()
        for node_id in children(client, NODES):
            data, _ = client.get(f"{NODES}/{node_id}")
            launchers.add(json.loads(data)["launcher"])
    finally:
        for proc in procs:
            proc.kill()
    calls = sorted(r["started"] for r in stats["run_instances"]["instances"]
                   if r["outcome"] == "ok")
    assert len(calls) == REQUESTS
    assert not stats["throttled"], stats["throttled"]
    busiest = window_max(calls, 5.0)
    assert busiest <= RATE * 5 + len(procs), \
        f"{busiest} RunInstances calls in 5 s (budget {RATE * 5:.0f})"
    sustained = (len(calls) - 1) / (calls[-1] - calls[0])
    assert sustained >= 0.8 * RATE, f"{sustained:.2f} calls/s together"
    assert len(launchers) == 2, f"nodes launched by {launchers}"
