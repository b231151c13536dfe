"""Quota, capacity and throttling as EC2 answers them, through the launcher."""

from __future__ import annotations

from tests.functional.aws.helpers import adapter_of, pool_paused
from tests.functional.launcher.helpers import wait_for


def test_quota_pause_then_resume(env, aws):
    # 4 vCPUs of standard on-demand quota: two t3.medium (2 vCPUs) fit.
    aws.local.configure(quotas={"ec2": {"L-1216C47A": 4}})
    env.write_config([aws.provider()])
    env.start_launcher()
    zuul = env.zuul
    first = [zuul.submit(["small"]) for _ in range(2)]
    held = []
    for rid in first:
        assert zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
            "fulfilled"
        held += zuul.accept(rid)
    calls = aws.local.stats()["run_instances"]["launched"]
    rid = zuul.submit(["small"])
    wait_for(lambda: pool_paused(env.client), what="pool paused at quota")
    assert zuul.get_request(rid)["state"] == "pending"
    # Paused, not hammering the API: no launch was even tried.
    assert aws.local.stats()["run_instances"]["launched"] == calls
    zuul.release(held[:1])
    assert zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    wait_for(lambda: not pool_paused(env.client), what="pool unpaused")


def test_capacity_error_aborts_node_and_request_is_retried(env, aws):
    aws.local.inject_fault("InsufficientInstanceCapacity", count=1)
    env.write_config([aws.provider()])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["aws"]
    manager.offerings.base_ttl = 1.0       # 3 minutes in production
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    stats = aws.local.stats()
    assert stats["faults"]["RunInstances"] == \
        {"InsufficientInstanceCapacity": 1}
    assert stats["run_instances"]["launched"] == 1
    # The aborted node was replaced by a new one, not retried in place,
    # once the offering's capacity record (one strike) had expired; the
    # success removed the record.
    assert int(req["nodes"][0]) > 0
    assert adapter_of(launcher).api.stats()["failures"]["run_instances"] == 1
    wait_for(lambda: not list(launcher.zk.iter_offerings("aws")),
             what="offering record removed after the success")


def test_vcpu_limit_error_aborts_not_fails(env, aws):
    aws.local.inject_fault("VcpuLimitExceeded", count=2)
    env.write_config([aws.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    assert aws.local.stats()["faults"]["RunInstances"] == \
        {"VcpuLimitExceeded": 2}


def test_throttling_backs_off_and_slows_the_limiter(env, aws):
    # EC2's RunInstances call bucket (5 burst, 2/s) against a launcher
    # told it may call 100/s: the cloud must push back, and the launcher
    # must absorb it without failing anything.
    aws.local.configure(throttle=True)
    env.write_config([aws.provider(**{"batch-creates": False})])
    launcher = env.start_launcher()
    rids = [env.zuul.submit(["small"]) for _ in range(10)]
    for rid in rids:
        assert env.zuul.wait_state(rid, {"fulfilled", "failed"},
                                   timeout=60)["state"] == "fulfilled"
    stats = aws.local.stats()
    assert stats["throttled"].get("RunInstances", 0) > 0
    assert stats["run_instances"]["launched"] == 10
    limiter = adapter_of(launcher).limiter
    assert limiter.stats.throttled == stats["throttled"]["RunInstances"]
    assert limiter.effective_rate < limiter.rate


def test_unknown_instance_type_is_declined(env, aws):
    label = aws.label(**{"instance-type": "zz9.plural"})
    env.write_config([aws.provider(labels=[label])])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    assert "RunInstances" not in aws.local.stats()["calls"]


def test_missing_image_is_declined(env, aws):
    provider = aws.provider()
    provider["cloud-images"][0]["image-id"] = "ami-0000000000000dead"
    env.write_config([provider])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    assert "RunInstances" not in aws.local.stats()["calls"]
