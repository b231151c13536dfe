"""tools.fakeaws: moto behind the EC2-like proxy, driven by boto3 over HTTP.

One LocalAWS (child-process mode) serves the whole module with a short
RunInstances latency; the ``fake`` fixture puts it back to its start-up
flags, resets moto and the counters, and bootstraps a launch environment
before each test.  botocore retries are off (``total_max_attempts=1``) so every
injected error reaches the test as a ClientError.  A few pure-logic tests
of the token bucket and fault plan use a fake clock and no server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tools.fakeaws import LocalAWS
from tools.fakeaws.config import Behaviour
from tools.fakeaws.faults import FaultPlan, FaultRule
from tools.fakeaws.ledger import Ledger, quota_code, vcpus
from tools.fakeaws.local import ROOT
from tools.fakeaws.throttle import BucketSpec, Throttle, bucket_costs

# botocore adds one to a Config's "max_attempts" (it counts retries);
# "total_max_attempts" 1 is what really means "no retry".
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
LATENCY = 0.05


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def aws():
    local = LocalAWS(run_instances_latency=LATENCY,
                     quotas={"ec2": {"L-1216C47A": 64}})
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def launch_env(aws):
    return aws.bootstrap()


class Fake:
    def __init__(self, aws: LocalAWS, env: dict[str, str]):
        self.aws = aws
        self.ec2 = aws.client("ec2", config=NO_RETRY)
        self.env = env

    def run(self, count: int = 1, min_count: int | None = None,
            instance_type: str = "t3.small") -> list[str]:
        resp = self.ec2.run_instances(
            ImageId=self.env["image_id"], SubnetId=self.env["subnet_id"],
            InstanceType=instance_type, MinCount=min_count or count,
            MaxCount=count)
        return [i["InstanceId"] for i in resp["Instances"]]

    def error(self, call, *args, **kwargs) -> ClientError:
        with pytest.raises(ClientError) as info:
            call(*args, **kwargs)
        return info.value


@pytest.fixture
def fake(aws, launch_env):
    # moto is not reset between tests: after a reset moto rebuilds its EC2
    # region (built-in AMIs...) on first use, 0.3-4 s each time.  Tests
    # look only at their own instances and at the counters.
    aws.restore_config()
    aws.refill()
    aws.reset_stats()
    return Fake(aws, launch_env)


def code(err: ClientError) -> tuple[str, int]:
    return (err.response["Error"]["Code"],
            err.response["ResponseMetadata"]["HTTPStatusCode"])


# -- pure logic: buckets and fault rules ---------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refuses_past_burst_and_refills_at_rate():
    clock = FakeClock()
    throttle = Throttle({"run_instances": BucketSpec(5, 2)}, clock=clock)
    call = [("run_instances", 1)]
    assert all(throttle.admit("r", call) for _ in range(5))
    assert not throttle.admit("r", call)
    assert throttle.admit("other-region", call)
    clock.now += 0.4  # 0.8 tokens: not yet one
    assert not throttle.admit("r", call)
    clock.now += 0.1
    assert throttle.admit("r", call)
    assert not throttle.admit("r", call)


def test_bucket_charges_all_or_nothing():
    clock = FakeClock()
    throttle = Throttle({"run_instances": BucketSpec(5, 2),
                         "run_instances_resource": BucketSpec(10, 0)},
                        clock=clock)
    assert throttle.admit("r", bucket_costs(
        "RunInstances", {"MaxCount": ["8"]}))
    # 2 instance tokens left: refused, and the call bucket is not charged.
    for _ in range(4):
        assert not throttle.admit("r", bucket_costs(
            "RunInstances", {"MaxCount": ["3"]}))
    assert throttle.levels()["r"]["run_instances"] == 4
    assert throttle.admit("r", bucket_costs(
        "RunInstances", {"MaxCount": ["2"]}))


def test_bucket_costs_classify_actions():
    assert bucket_costs("TerminateInstances",
                        {"InstanceId.1": ["a"], "InstanceId.2": ["b"]}) == [
        ("terminate_instances", 1), ("terminate_instances_resource", 2)]
    assert bucket_costs("DescribeInstances", {}) == [("describe", 1)]
    assert bucket_costs("GetConsoleOutput", {}) == [("describe", 1)]
    assert bucket_costs("CreateTags", {}) == [("mutating", 1)]


def test_fault_plan_counts_down_and_matches_type():
    plan = FaultPlan()
    plan.add(FaultRule(count=2, instance_type="t3.large"))
    plan.add(FaultRule(code="InternalError", action="*", count=None,
                       probability=0.0))
    assert plan.pick("RunInstances", "t3.small") is None
    assert plan.pick("RunInstances", "t3.large").code == \
        "InsufficientInstanceCapacity"
    assert plan.pick("RunInstances", "t3.large") is not None
    assert plan.pick("RunInstances", "t3.large") is None
    assert [r["code"] for r in plan.rules()] == ["InternalError"]


def test_behaviour_flags_validate_and_jitter():
    behaviour = Behaviour({"latency": {"*": 1.0}, "latency_jitter": 0.5})
    samples = {behaviour.latency("DescribeImages") for _ in range(50)}
    assert len(samples) > 1 and all(0.5 <= x <= 1.5 for x in samples)
    assert behaviour.latency("RunInstances") >= 0.75  # 1.5 s default
    for bad in ({"launch": "all"}, {"latency_jitter": 1},
                {"faults": [{"code": "X", "colour": "red"}]}):
        with pytest.raises(ValueError):
            behaviour.apply(bad)
    behaviour.apply({"latency": {"*": None}, "run_instances_latency": 0})
    assert behaviour.latency("DescribeImages") == 0
    behaviour.restore()
    assert behaviour.to_dict()["latency"] == {"*": 1.0, "RunInstances": 1.5}


@pytest.mark.parametrize("instance_type,spot,expected", [
    ("t3.small", False, "L-1216C47A"), ("t3.small", True, "L-34B43A08"),
    ("z1d.large", False, "L-1216C47A"), ("g5.xlarge", False, "L-DB2E81BA"),
    ("vt1.3xlarge", True, "L-3819A6DF"), ("inf2.xlarge", False, "L-1945791B"),
    ("hpc6a.48xlarge", False, "L-F7808C92"), ("p4d.24xlarge", True,
                                               "L-7212CCBC"),
    ("trn1.2xlarge", False, "L-2C3B7624"), ("dl1.24xlarge", False,
                                             "L-6E869C2A"),
    ("u-6tb1.metal", False, "L-43DA4232"), ("mac1.metal", False, None),
])
def test_quota_class_of_instance_types(instance_type, spot, expected):
    assert quota_code(instance_type, spot) == expected


def test_vcpus_come_from_moto_table():
    assert vcpus("t3.small") == 2 and vcpus("m5.4xlarge") == 16


def test_ledger_reserves_then_settles():
    ledger = Ledger()
    assert ledger.reserve("r", "Q", 2, wanted=10, limit=9) == 4
    assert ledger.reserve("r", "Q", 2, wanted=1, limit=9) == 0
    ledger.settle("r", "Q", 2, 4, ["i-1", "i-2", "i-3"])  # moto gave 3
    assert ledger.usage() == {"r": {"Q": 6}}
    assert ledger.reserve("r", "Q", 2, wanted=5, limit=9) == 1
    ledger.settle("r", "Q", 2, 1, [])
    ledger.release(["i-1", "i-unknown"])
    assert ledger.usage() == {"r": {"Q": 4}}


# -- latency ---------------------------------------------------------------


def test_run_instances_latency_per_call_and_overlapping(fake):
    fake.aws.configure(run_instances_latency=0.5, throttle=False)
    start = time.monotonic()
    fake.run()
    assert time.monotonic() - start >= 0.5

    durations: list[float] = []

    def launch():
        t0 = time.monotonic()
        fake.run()
        durations.append(time.monotonic() - t0)

    threads = [threading.Thread(target=launch) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    assert len(durations) == 4 and min(durations) >= 0.5
    assert wall < 4 * 0.5 * 0.75, "parallel calls did not overlap"
    assert fake.aws.stats()["max_in_flight"]["RunInstances"] >= 2


def test_latency_for_other_actions(fake):
    fake.aws.configure(latency={"DescribeKeyPairs": 0.5})
    start = time.monotonic()
    fake.ec2.describe_key_pairs()
    assert time.monotonic() - start >= 0.5
    start = time.monotonic()
    fake.ec2.describe_subnets()
    assert time.monotonic() - start < 0.5


# -- throttling ------------------------------------------------------------


def test_sixth_run_instances_in_a_burst_is_throttled(fake):
    # Serial boto3 calls take ~50 ms each here; a slow refill keeps the
    # burst a burst however loaded the machine is.
    fake.aws.configure(run_instances_latency=0,
                       buckets={"run_instances": {"rate": 0.1}})
    for _ in range(5):
        fake.run()
    err = fake.error(fake.run)
    assert code(err) == ("RequestLimitExceeded", 503)
    assert err.response["Error"]["Message"] == "Request limit exceeded."
    stats = fake.aws.stats()
    assert stats["throttled"] == {"RunInstances": 1}
    assert stats["calls"]["RunInstances"] == 6
    assert stats["run_instances"]["instances"][-1]["outcome"] == "throttled"
    assert stats["run_instances"]["launched"] == 5
    assert stats["buckets"]["us-east-1"]["run_instances"] < 1


def test_parallel_burst_on_default_buckets_then_refill(fake):
    fake.aws.configure(run_instances_latency=0)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def launch():
        barrier.wait()
        try:
            fake.run()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(code(exc)[0])

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["RequestLimitExceeded"] + ["ok"] * 5

    def launch_succeeds():
        try:
            return fake.run()
        except ClientError as exc:
            assert code(exc)[0] == "RequestLimitExceeded"
            return None
    # The call bucket refills at 2 tokens/s.
    assert wait_for(launch_succeeds, timeout=3)


def test_instance_bucket_counts_max_count(fake):
    fake.aws.configure(run_instances_latency=0, buckets={
        "run_instances_resource": {"burst": 10, "rate": 0.001}})
    assert len(fake.run(8)) == 8
    assert code(fake.error(fake.run, 3)) == ("RequestLimitExceeded", 503)
    assert len(fake.run(2)) == 2


def test_describe_bucket_and_switching_buckets_off(fake):
    # DescribeKeyPairs: same bucket as DescribeInstances, but its cost in
    # moto does not grow with the instances earlier tests left behind.
    describe = fake.ec2.describe_key_pairs
    fake.aws.configure(buckets={"describe": {"burst": 3, "rate": 0.001}})
    for _ in range(3):
        describe()
    err = fake.error(describe)
    assert code(err) == ("RequestLimitExceeded", 503)
    fake.aws.configure(buckets={"describe": {"enabled": False}})
    for _ in range(5):
        describe()
    fake.aws.configure(buckets={"describe": {"enabled": True}},
                       throttle=False)
    for _ in range(5):
        describe()
    assert fake.aws.stats()["throttled"] == {"DescribeKeyPairs": 1}


def test_throttle_off_lets_a_burst_through(fake):
    fake.aws.configure(run_instances_latency=0, throttle=False)
    for _ in range(8):
        fake.run()
    assert fake.aws.stats()["throttled"] == {}


def test_terminate_many_ids_in_one_call(fake):
    ids = fake.run(60)
    resp = fake.ec2.terminate_instances(InstanceIds=ids)
    assert sorted(i["InstanceId"] for i in resp["TerminatingInstances"]) \
        == sorted(ids)
    assert fake.aws.stats()["terminate_instances"] == {
        "calls": 1, "instance_ids": 60}


# -- Service Quotas --------------------------------------------------------


def test_service_quotas_get_and_list(fake):
    sq = fake.aws.client("service-quotas", config=NO_RETRY)
    quota = sq.get_service_quota(ServiceCode="ec2",
                                 QuotaCode="L-1216C47A")["Quota"]
    assert quota["Value"] == 64.0  # from the LocalAWS constructor
    assert quota["QuotaName"].startswith("Running On-Demand Standard")
    default = sq.get_aws_default_service_quota(ServiceCode="ec2",
                                               QuotaCode="L-1216C47A")
    assert default["Quota"]["Value"] == 640.0

    fake.aws.configure(quotas={"ec2": {"L-34B43A08": 16}})
    pages = sq.get_paginator("list_service_quotas").paginate(
        ServiceCode="ec2", PaginationConfig={"PageSize": 5})
    values = {q["QuotaCode"]: q["Value"]
              for page in pages for q in page["Quotas"]}
    assert values["L-34B43A08"] == 16.0 and values["L-1216C47A"] == 64.0
    assert len(values) > 5
    ebs = sq.list_service_quotas(ServiceCode="ebs")["Quotas"]
    assert "L-D18FCD1D" in {q["QuotaCode"] for q in ebs}

    err = fake.error(sq.get_service_quota, ServiceCode="ec2",
                     QuotaCode="L-00000000")
    assert code(err) == ("NoSuchResourceException", 400)
    assert fake.aws.stats()["calls"]["servicequotas:ListServiceQuotas"] >= 2


def test_bad_quota_code_is_refused(fake):
    with pytest.raises(ValueError, match="unknown quota"):
        fake.aws.configure(quotas={"ec2": {"L-NOPE": 1}})


# -- faults ----------------------------------------------------------------


def test_capacity_error_for_the_next_two_launches(fake):
    fake.aws.inject_fault("InsufficientInstanceCapacity", count=2)
    for _ in range(2):
        err = fake.error(fake.run)
        assert code(err) == ("InsufficientInstanceCapacity", 500)
        assert "t3.small" in err.response["Error"]["Message"]
    assert len(fake.run()) == 1
    stats = fake.aws.stats()
    assert stats["faults"] == {
        "RunInstances": {"InsufficientInstanceCapacity": 2}}
    assert fake.aws.config()["faults"] == []
    assert stats["run_instances"]["launched"] == 1


def test_fault_by_instance_type_and_probability(fake):
    fake.aws.configure(throttle=False)
    fake.aws.inject_fault(instance_type="t3.large", count=None)
    fake.aws.inject_fault("InternalError", count=None, probability=0.0)
    for _ in range(3):
        err = fake.error(fake.run, instance_type="t3.large")
        assert code(err)[0] == "InsufficientInstanceCapacity"
        assert len(fake.run(instance_type="t3.small")) == 1
    fake.aws.clear_faults()
    assert len(fake.run(instance_type="t3.large")) == 1


def test_fault_by_subnet(fake):
    # A zone out of capacity: calls into its subnet fail, by SubnetId or
    # by the first network interface's subnet; the other zone launches.
    fake.aws.configure(throttle=False)
    short, other = fake.env["subnet_ids"][:2]
    fake.aws.inject_fault(subnet=short, count=None)
    err = fake.error(fake.run)                     # SubnetId=short
    assert code(err)[0] == "InsufficientInstanceCapacity"
    nic = [{"DeviceIndex": 0, "SubnetId": short}]
    err = fake.error(fake.ec2.run_instances, ImageId=fake.env["image_id"],
                     InstanceType="t3.small", MinCount=1, MaxCount=1,
                     NetworkInterfaces=nic)
    assert code(err)[0] == "InsufficientInstanceCapacity"
    nic[0]["SubnetId"] = other
    resp = fake.ec2.run_instances(ImageId=fake.env["image_id"],
                                  InstanceType="t3.small", MinCount=1,
                                  MaxCount=1, NetworkInterfaces=nic)
    assert len(resp["Instances"]) == 1
    fake.aws.clear_faults()
    assert len(fake.run()) == 1


def test_launch_count_by_subnet(fake):
    # One zone short of capacity starts MinCount, the other up to MaxCount.
    fake.aws.configure(throttle=False)
    short, other = fake.env["subnet_ids"][:2]
    fake.aws.configure(launch_by_subnet={short: "min"})

    def run(subnet):
        resp = fake.ec2.run_instances(
            ImageId=fake.env["image_id"], SubnetId=subnet,
            InstanceType="t3.small", MinCount=1, MaxCount=4)
        return len(resp["Instances"])

    assert run(short) == 1
    assert run(other) == 4
    assert fake.aws.config()["launch_by_subnet"] == {short: "min"}
    with pytest.raises(Exception):
        fake.aws.configure(launch_by_subnet={short: "some"})


@pytest.mark.parametrize("error_code,status,action", [
    ("VcpuLimitExceeded", 400, "RunInstances"),
    ("InstanceLimitExceeded", 400, "RunInstances"),
    ("InternalError", 500, "DescribeInstances"),
])
def test_limit_and_server_errors(fake, error_code, status, action):
    fake.aws.inject_fault(error_code, action=action, limit=32)
    call = fake.run if action == "RunInstances" \
        else fake.ec2.describe_instances
    err = fake.error(call)
    assert code(err) == (error_code, status)
    if error_code == "VcpuLimitExceeded":
        assert "vCPU limit of 32" in err.response["Error"]["Message"]
    call()  # count=1: the next call passes


def test_delay_only_fault_then_forwards(fake):
    fake.aws.inject_fault(None, action="DescribeInstances", delay=0.3)
    start = time.monotonic()
    fake.ec2.describe_instances()
    assert time.monotonic() - start >= 0.3
    assert fake.aws.stats()["faults"] == {}


# -- vCPU quota enforcement -----------------------------------------------


def standard_vcpus_in_use(aws: LocalAWS) -> int:
    usage = aws.stats()["vcpus_in_use"].get("us-east-1", {})
    return usage.get("L-1216C47A", 0)


def test_enforced_quota_cuts_launches_then_refuses(fake):
    used = standard_vcpus_in_use(fake.aws)  # earlier tests' instances
    fake.aws.configure(enforce_quotas=True, throttle=False,
                       quotas={"ec2": {"L-1216C47A": used + 8}})
    ids = fake.run(10, min_count=1)  # t3.small: 2 vCPUs each
    assert len(ids) == 4
    err = fake.error(fake.run)
    assert code(err) == ("VcpuLimitExceeded", 400)
    assert f"vCPU limit of {used + 8} " in err.response["Error"]["Message"]
    assert standard_vcpus_in_use(fake.aws) == used + 8
    fake.ec2.terminate_instances(InstanceIds=ids[:2])
    assert len(fake.run(5, min_count=2)) == 2
    stats = fake.aws.stats()
    assert stats["faults"] == {"RunInstances": {"VcpuLimitExceeded": 1}}
    assert [(c["max_count"], c["launched"], c["outcome"])
            for c in stats["run_instances"]["instances"]] == [
        (10, 4, "ok"), (1, 0, "VcpuLimitExceeded"), (5, 2, "ok")]


def test_enforced_quota_holds_under_parallel_launches(fake):
    used = standard_vcpus_in_use(fake.aws)
    fake.aws.configure(enforce_quotas=True, throttle=False,
                       run_instances_latency=0.2,
                       quotas={"ec2": {"L-1216C47A": used + 6}})
    outcomes: list[str] = []

    def launch():
        try:
            fake.run()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(code(exc)[0])

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["VcpuLimitExceeded"] * 3 + ["ok"] * 3


# -- counting and reconfiguration -----------------------------------------


def test_stats_count_instances_per_call(fake):
    fake.aws.configure(throttle=False)
    assert len(fake.run(4, min_count=1)) == 4  # EC2-like: up to MaxCount
    fake.aws.configure(launch="min")
    assert len(fake.run(4, min_count=1)) == 1  # moto's own behaviour
    run = fake.aws.stats()["run_instances"]
    assert {k: run[k] for k in ("calls", "min_count", "max_count",
                                "launched")} == {
        "calls": 2, "min_count": 2, "max_count": 8, "launched": 5}
    assert [(c["min_count"], c["max_count"], c["launched"], c["outcome"],
             c["instance_type"]) for c in run["instances"]] == [
        (1, 4, 4, "ok", "t3.small"), (1, 4, 1, "ok", "t3.small")]
    fake.aws.reset_stats()
    stats = fake.aws.stats()
    assert stats["calls"] == {} and stats["run_instances"]["calls"] == 0


def test_stats_give_motos_cpu_since_the_reset(fake):
    # On a shared machine moto's wall time says how busy the machine was;
    # its CPU seconds say what its own work cost.
    fake.aws.configure(throttle=False)
    idle = fake.aws.stats()["moto_cpu_s"]
    assert idle is not None and 0 <= idle < 0.5
    fake.ec2.terminate_instances(InstanceIds=fake.run(4))
    for _ in range(10):
        fake.ec2.describe_instances()
    busy = fake.aws.stats()["moto_cpu_s"]
    assert busy > idle
    fake.aws.reset_stats()
    assert fake.aws.stats()["moto_cpu_s"] < busy


def test_client_token_repeats_the_earlier_launch(fake):
    """As EC2: RunInstances with a ClientToken seen before starts nothing
    and answers with the original instances (a retried call whose answer
    was lost leaks nothing)."""
    fake.aws.configure(throttle=False)

    def run(token: str) -> list[str]:
        resp = fake.ec2.run_instances(
            ImageId=fake.env["image_id"], SubnetId=fake.env["subnet_id"],
            InstanceType="t3.small", MinCount=1, MaxCount=2,
            ClientToken=token)
        return [i["InstanceId"] for i in resp["Instances"]]

    first = run("token-a")
    assert len(first) == 2
    assert run("token-a") == first
    other = run("token-b")
    assert len(other) == 2 and not set(other) & set(first)
    run_stats = fake.aws.stats()["run_instances"]
    assert [(c["launched"], c["outcome"])
            for c in run_stats["instances"]] == [
        (2, "ok"), (0, "idempotent"), (2, "ok")]
    assert run_stats["launched"] == 4


def test_runtime_reconfiguration(fake):
    config = fake.aws.configure(run_instances_latency=0.4)
    assert config["latency"]["RunInstances"] == 0.4
    start = time.monotonic()
    fake.run()
    assert time.monotonic() - start >= 0.4
    with pytest.raises(ValueError, match="unknown flags"):
        fake.aws.configure(no_such_flag=1)
    restored = fake.aws.restore_config()
    assert restored["latency"]["RunInstances"] == LATENCY
    assert restored["quotas"]["ec2"]["L-1216C47A"] == 64.0


def test_reset_forgets_instances_and_counters(fake):
    fake.aws.configure(buckets={"mutating": {"burst": 1, "rate": 0.001}})
    fake.ec2.create_key_pair(KeyName="before-reset")
    fake.aws.reset()
    pairs = fake.ec2.describe_key_pairs()["KeyPairs"]
    assert "before-reset" not in {p["KeyName"] for p in pairs}
    assert fake.aws.stats()["calls"] == {"DescribeKeyPairs": 1}
    fake.ec2.create_key_pair(KeyName="after-reset")  # buckets are full
    # The module's launch environment went with the reset: make it anew.
    fake.env.update(fake.aws.bootstrap())


def test_bootstrap_ids_launch_and_other_services_pass_through(fake):
    env = fake.env
    resp = fake.ec2.run_instances(
        ImageId=env["image_id"], SubnetId=env["subnet_id"],
        SecurityGroupIds=[env["security_group_id"]], KeyName=env["key_name"],
        InstanceType="t3.small", MinCount=1, MaxCount=1)
    instance = resp["Instances"][0]
    assert instance["KeyName"] == "fakeaws"
    assert instance["SubnetId"] == env["subnet_id"]
    s3 = fake.aws.client("s3")
    s3.create_bucket(Bucket="fakeaws-test")
    s3.put_object(Bucket="fakeaws-test", Key="k", Body=b"x" * 1000)
    assert s3.head_object(Bucket="fakeaws-test",
                          Key="k")["ContentLength"] == 1000
    assert fake.aws.stats()["calls"]["s3:PUT"] == 2


def test_env_points_a_child_process_at_the_fake(fake):
    script = ("import boto3; print(boto3.client('service-quotas')"
              ".get_service_quota(ServiceCode='ec2', QuotaCode='L-1216C47A')"
              "['Quota']['Value'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(fake.aws.env())
    out = subprocess.run([sys.executable, "-c", script], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "64.0", out.stderr


def test_proxy_adds_little_per_call(fake):
    """Guards against the Nagle/delayed-ACK stall (+40 ms per call)."""
    import boto3
    direct = boto3.client("ec2", endpoint_url=fake.aws.moto_url,
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
    fake.aws.configure(throttle=False)

    def per_call(client) -> float:
        client.describe_key_pairs()  # connect outside the measurement
        rounds = []
        for _ in range(3):  # the best round: load spikes only add time
            start = time.monotonic()
            for _ in range(10):
                client.describe_key_pairs()
            rounds.append((time.monotonic() - start) / 10)
        return min(rounds)
    assert per_call(fake.ec2) - per_call(direct) < 0.03


# -- other ways to run it --------------------------------------------------


def test_cli_prints_endpoint_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.fakeaws", "--latency", "0",
         "--no-throttle", "--quota", "ec2/L-1216C47A=32",
         "--workdir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        import boto3
        sq = boto3.client("service-quotas", region_name="us-east-1",
                          endpoint_url=info["endpoint_url"],
                          aws_access_key_id="x", aws_secret_access_key="y")
        quota = sq.get_service_quota(ServiceCode="ec2",
                                     QuotaCode="L-1216C47A")
        assert quota["Quota"]["Value"] == 32.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert os.path.exists(tmp_path / "moto.log")


def test_in_process_mode():
    # No EC2 call here: moto's first EC2 call in a region loads its
    # built-in AMIs (seconds); the proxy path is the same as above.
    with LocalAWS(in_process=True, quotas={"ebs": {"L-7A658B76": 7}},
                  flags={"latency": {"DescribeKeyPairs": 0.2}}) as local:
        sq = local.client("service-quotas", config=NO_RETRY)
        assert sq.get_service_quota(ServiceCode="ebs", QuotaCode="L-7A658B76"
                                    )["Quota"]["Value"] == 7.0
        local.client("s3").list_buckets()
        assert local.stats()["calls"] == {
            "servicequotas:GetServiceQuota": 1, "s3:GET": 1}
        assert local.config()["latency"]["DescribeKeyPairs"] == 0.2


def test_start_failure_reports_the_child_log():
    local = LocalAWS(flags={"no_such_flag": True})
    with pytest.raises(RuntimeError, match="unknown flags"):
        local.start()
    assert local.workdir is None  # the temporary workdir is gone


def test_terminated_instances_are_forgotten_after_the_ttl(tmp_path):
    # As EC2 does (after about an hour), not as moto does (never): a long
    # soak would otherwise slow DescribeInstances down with every instance
    # it ever started.
    with LocalAWS(run_instances_latency=0.0, throttle=False,
                  workdir=str(tmp_path), terminated_ttl=1.0) as aws:
        boot = aws.bootstrap()
        ec2 = aws.client("ec2")
        kept = ec2.run_instances(ImageId=boot["image_id"], MinCount=1,
                                 MaxCount=1)["Instances"][0]["InstanceId"]
        gone = ec2.run_instances(ImageId=boot["image_id"], MinCount=2,
                                 MaxCount=2)["Instances"]
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in gone])

        def listed():
            return {i["InstanceId"]
                    for r in ec2.describe_instances()["Reservations"]
                    for i in r["Instances"]}
        assert {i["InstanceId"] for i in gone} <= listed()   # at first
        deadline = time.monotonic() + 15
        while listed() != {kept} and time.monotonic() < deadline:
            threading.Event().wait(0.2)
        assert listed() == {kept}


def test_tags_of_forgotten_instances_go_too(tmp_path):
    # moto keeps the tags of every instance it ever held, and its tag
    # reads walk them all: a soak would slow down with every launch.
    with LocalAWS(run_instances_latency=0.0, throttle=False,
                  workdir=str(tmp_path), terminated_ttl=1.0) as aws:
        boot = aws.bootstrap()
        ec2 = aws.client("ec2")
        spec = [{"ResourceType": "instance",
                 "Tags": [{"Key": "nodepool_node_id", "Value": "1"}]}]
        kept = ec2.run_instances(ImageId=boot["image_id"], MinCount=1,
                                 MaxCount=1, TagSpecifications=spec
                                 )["Instances"][0]["InstanceId"]
        gone = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=boot["image_id"], MinCount=2, MaxCount=2,
            TagSpecifications=spec)["Instances"]]
        ec2.terminate_instances(InstanceIds=gone)

        def tagged():
            return {t["ResourceId"] for t in ec2.describe_tags(Filters=[
                {"Name": "key", "Values": ["nodepool_node_id"]}])["Tags"]}
        assert tagged() == {kept, *gone}
        deadline = time.monotonic() + 15
        while tagged() != {kept} and time.monotonic() < deadline:
            threading.Event().wait(0.2)
        assert tagged() == {kept}


def test_a_tag_filter_reads_each_instances_tags_directly(tmp_path):
    # EC2 finds an instance's tags without reading everyone's; moto scans
    # every tag of the region per instance (seconds at 400 instances,
    # with every other call waiting behind it).
    with LocalAWS(run_instances_latency=0.0, throttle=False,
                  workdir=str(tmp_path)) as aws:
        boot = aws.bootstrap()
        ec2 = aws.client("ec2")

        def run(count, batch):
            ec2.run_instances(
                ImageId=boot["image_id"], MinCount=count, MaxCount=count,
                TagSpecifications=[{"ResourceType": kind, "Tags": [
                    {"Key": "nodepool_provider_name", "Value": "p"},
                    {"Key": "batch", "Value": batch},
                    {"Key": "k1", "Value": "v"}, {"Key": "k2", "Value": "v"}]}
                    for kind in ("instance", "volume")])
        for batch in range(4):
            run(100, str(batch))
        run(1, "lone")
        aws.reset_stats()
        found = [i for r in ec2.describe_instances(Filters=[
            {"Name": "tag:batch", "Values": ["lone"]}])["Reservations"]
            for i in r["Instances"]]
        assert len(found) == 1
        assert {t["Key"]: t["Value"] for t in found[0]["Tags"]} == {
            "nodepool_provider_name": "p", "batch": "lone", "k1": "v",
            "k2": "v"}
        held = aws.stats()["moto"]["DescribeInstances"]["max_s"]
        assert held < 0.5, f"DescribeInstances held moto {held:.2f} s"


_SAME_ANSWERS = '''
import json, re, boto3
from moto import mock_aws
from tools.fakeaws import motochild
motochild.fast_tags()

raw = []
def keep_body(response_dict, **_):
    raw.append(re.sub(rb"<requestId>[^<]*</requestId>", b"",
                      response_dict["body"]))

def answers(ec2):
    raw.clear()
    return json.dumps({
        "instances": ec2.describe_instances()["Reservations"],
        "volumes": ec2.describe_volumes()["Volumes"],
        "status": ec2.describe_instance_status(
            IncludeAllInstances=True)["InstanceStatuses"],
        "subnets": ec2.describe_subnets()["Subnets"],
        "groups": ec2.describe_security_groups()["SecurityGroups"],
        "images": ec2.describe_images(Owners=["amazon"])["Images"][:50],
        "types": ec2.describe_instance_types(
            InstanceTypes=["t3.micro"])["InstanceTypes"],
        "filtered": ec2.describe_instances(Filters=[
            {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "tag:a", "Values": ["b"]}])["Reservations"],
    }, default=str, sort_keys=True) + repr(raw)

with mock_aws():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    # The answers are compared byte for byte too (but for requestId).
    ec2.meta.events.register("before-parse.ec2.*", keep_body)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    started = ec2.run_instances(
        ImageId=image, MinCount=5, MaxCount=5, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}])
    ec2.terminate_instances(
        InstanceIds=[started["Instances"][0]["InstanceId"]])
    before = answers(ec2)
    motochild.fast_serializer()
    same = [before == answers(ec2), before == answers(ec2)]
    # An instance started with the AMI taken by id looks like one started
    # after moto's scan of every image.
    motochild.fast_image_lookup()
    after = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)

    def image_fields(record):
        return {k: record.get(k) for k in (
            "ImageId", "Architecture", "Platform", "VirtualizationType",
            "RootDeviceName", "RootDeviceType", "Hypervisor")}
    same.append(image_fields(started["Instances"][1])
                == image_fields(after["Instances"][0]))
    print(json.dumps(same + [len(before)]))
'''


def test_the_fast_paths_answer_what_moto_answers():
    # moto works out the attribute names and the dotted path of every
    # field of every record again, and writes its XML through SAX; the
    # fast paths halve an instance record's cost -- and the answers must
    # stay exactly moto's, byte for byte.
    out = subprocess.run([sys.executable, "-c", _SAME_ANSWERS], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    same_first, same_again, same_image, size = json.loads(
        out.stdout.splitlines()[-1])
    assert same_first and same_again and same_image and size > 10000


@pytest.mark.parametrize("body", [
    {"R": {"@xmlns": "urn:x", "a": ["1", None], "b": True, "c": False}},
    {"R": {"a": (), "b": [], "c": "", "d": {"#text": "", "@x": '"<&'},
           "e": "<&>\"'", "f": 3, "g": [[1, 2]], "h": b"xy", "i": 1.5,
           "@xmlns": {"": "u", "p": None}, "j": {"#text": None},
           "k": [{"l": []}, {"m": ()}], "n": {"@y": None, "o": "p"}}},
    {"R": None},
    {"R": [{"a": "1"}]},
    {"R": "text only"},
])
def test_moto_xml_writer_writes_what_xmltodict_writes(body):
    import xmltodict

    from tools.fakeaws.motoxml import unparse
    assert unparse(body) == xmltodict.unparse(
        body, full_document=True, short_empty_elements=True)


@pytest.mark.parametrize("body", [
    {"R": {"bad name": "x"}},          # refused names: xmltodict's error
    {"R": {"a": "1", "@b c": "2"}},
    {"R": [{"a": "1"}, {"a": "2"}]},   # two roots
    {"R": "1", "S": "2"},
    {},
])
def test_moto_xml_writer_leaves_refusals_to_xmltodict(body):
    import xmltodict

    from tools.fakeaws.motoxml import unparse
    with pytest.raises(ValueError) as theirs:
        xmltodict.unparse(body, full_document=True,
                          short_empty_elements=True)
    with pytest.raises(ValueError) as ours:
        unparse(body)
    assert str(ours.value) == str(theirs.value)


def test_moto_xml_writer_passes_comments_to_xmltodict():
    import xmltodict

    from tools.fakeaws.motoxml import unparse
    body = {"R": {"#comment": "note", "a": "1"}}
    assert unparse(body) == xmltodict.unparse(
        body, full_document=True, short_empty_elements=True)


_SAME_INSTANCES = '''
import json, boto3
from moto import mock_aws
from moto.ec2.models import ec2_backends
from tools.fakeaws import motochild

with mock_aws():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    backend = ec2_backends[ec2_backends.keys().__iter__().__next__()][
        "us-east-1"]
    motochild.fast_instance_lookup()
    seen = []
    for count in (3, 30, 1):
        ids = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=image, MinCount=count, MaxCount=count)["Instances"]]
        # Every new instance got its root volume (found by id at once).
        volumes = ec2.describe_volumes(Filters=[{
            "Name": "attachment.instance-id", "Values": ids}])["Volumes"]
        seen.append(len(volumes) == count)
        seen += [backend.get_instance(i).id == i for i in ids]
    ec2.terminate_instances(InstanceIds=ids)
    seen.append(ec2.describe_instances(InstanceIds=ids)["Reservations"][0][
        "Instances"][0]["State"]["Name"] == "terminated")
    # A pruned reservation's instances are unknown again.
    motochild.prune_terminated(ec2_backends, {}, 0.0, 0.0)
    try:
        backend.get_instance(ids[0])
        seen.append(False)
    except Exception as exc:
        seen.append(type(exc).__name__ == "InvalidInstanceIdError")
    seen.append(backend.get_instance_by_id(ids[0]) is None)
    seen.append(backend.get_instance_by_id("i-0123456789abcdef0") is None)
    print(json.dumps(seen))
'''


def test_the_instance_index_finds_what_moto_finds_and_forgets_the_pruned():
    out = subprocess.run([sys.executable, "-c", _SAME_INSTANCES], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert len(seen) == 3 + 3 + 30 + 1 + 1 + 1 + 1 + 1
    assert all(seen), seen
