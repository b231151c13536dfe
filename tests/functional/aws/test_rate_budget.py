"""Launchers serving one AWS provider share its ``rate`` (issue 18, 1).

Two real ``nodepool-launcher -f`` processes with the same provider
(``rate: 4``, lone creates) on one ZooKeeper and the local AWS; 40
single-node requests.  The local cloud times every RunInstances call, so
the combined rate is measured where the account's limit would apply:

- no 5 s window of arrivals holds more than the rate allows (with a tolerance of one
  call per launcher: each one's bucket starts full); without the shared
  budget the two launchers would send up to twice the rate;
- the two together use the budget while the burst lasts (>= 0.6 x rate
  from the first call to the last, loose because a loaded machine slows
  the launches themselves; the benchmark measures the 0.9): an idle share
  is not wasted;
- both launchers launched nodes, so the rate really was shared.

Then the re-sharing, read from the records the launchers publish (each
says the shares it runs at): after ``kill -9`` of one of two launchers the
survivor runs at the whole rate within 10 s, while the dead launcher's
session (``zookeeper-timeout`` 10 s) and so its record still exist; after
a SIGTERM the stopped launcher's record is gone and the survivor runs at
the whole rate within a few beats.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml

from nodepool.zk.paths import rate_budget_dir
from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_processes import (
    NODES, LauncherProcess, children, wait_pools)
from tools.bench_budget import budget_beating, busiest

pytestmark = pytest.mark.functional

RATE = 4.0
LATENCY = 0.5
REQUESTS = 40


def write_config(env, aws, session: float = 4.0) -> str:
    path = env.write_config([aws.provider(
        pool_extra={"max-servers": 100}, rate=RATE,
        **{"batch-creates": False, "max-concurrency": REQUESTS // 2})])
    with open(path) as f:
        data = yaml.safe_load(f)
    data["zookeeper-timeout"] = session
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def members_beating(client, count: int) -> None:
    wait_for(budget_beating(client, count, "aws"), timeout=30,
             what=f"{count} rate budget members beating")


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
    top = busiest(calls, 5.0)
    assert top <= RATE * 5 + len(procs), \
        f"{top} RunInstances calls in 5 s (budget {RATE * 5:.0f})"
    sustained = (len(calls) - 1) / (calls[-1] - calls[0])
    assert sustained >= 0.6 * RATE, f"{sustained:.2f} calls/s together"
    assert len(launchers) == 2, f"nodes launched by {launchers}"


def write_shares(client) -> dict[str, float]:
    """Member -> the share of the write limiter its record says it runs at."""
    path = rate_budget_dir("aws")
    out = {}
    for name in children(client, path):
        try:
            data, _ = client.get(f"{path}/{name}")
        except Exception:
            continue
        shares = json.loads(data)["shares"]
        out[name] = next(v for k, v in shares.items()
                         if not k.endswith("-read"))
    return out


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_the_survivor_takes_the_share_of_a_launcher_gone(env, aws, tmp_path,
                                                          how):
    config = write_config(env, aws, session=10.0)
    client = env.client
    procs = [LauncherProcess(config, str(tmp_path / f"launcher{i}.log"))
             for i in range(2)]
    try:
        wait_pools(client, 2, procs)
        members_beating(client, 2)
        wait_for(lambda: sorted(write_shares(client).values()) == [0.5, 0.5],
                 timeout=30, what="both launchers at half the rate")
        before = set(write_shares(client))
        if how == "kill":
            procs[0].proc.kill()
            assert procs[0].wait(10) == -signal.SIGKILL
        else:
            procs[0].send(signal.SIGTERM)
            assert procs[0].wait(30) == 0
        gone = time.monotonic()

        def survivor_whole():
            shares = write_shares(client)
            return [m for m, v in shares.items() if v == 1.0] and shares
        shares = wait_for(survivor_whole, timeout=10,
                          what="the survivor at the whole rate")
        took = time.monotonic() - gone
    finally:
        for proc in procs:
            proc.kill()
    if how == "kill":
        # The lease, not the session, gave the share back: the dead
        # launcher's record was still there.
        assert set(shares) == before, (shares, before)
        assert took < 10.0
    else:
        assert len(shares) == 1, shares
