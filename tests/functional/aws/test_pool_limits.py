"""A pool's max-cores and max-ram against the local AWS: the cost of a node
is what the adapter's ``label_quota`` reads from EC2's instance-type
catalogue (``VCpuInfo.DefaultCores``, ``MemoryInfo.SizeInMiB``), and the
pool launches no instance beyond its limit -- a burst of 30 requests is
served as far as the limit allows, the rest wait (none declined, none
failed) with the pool paused on a verdict naming the limit, and are served
as nodes come back."""

from __future__ import annotations

import pytest

from tests.functional.aws.helpers import pool_paused
from tests.functional.launcher.helpers import wait_for

BURST = 30


def _fulfilled(zuul, rids) -> list[str]:
    return [r for r in rids
            if (zuul.get_request(r) or {}).get("state") == "fulfilled"]


def _states(zuul, rids) -> set:
    return {(zuul.get_request(r) or {}).get("state") for r in rids}


@pytest.mark.parametrize("limit, itype, fit, reason", [
    # m5.xlarge: 2 cores (4 vCPUs), 16384 MiB: 2 fit in 5 cores, not 3
    ({"max-cores": 5}, "m5.xlarge", 2,
     "pool max-cores reached: cores needs 2, 1 free"),
    # t3.large: 1 core, 8192 MiB: 2 fit in 20000 MiB, not 3
    ({"max-ram": 20000}, "t3.large", 2,
     "pool max-ram reached: ram needs 8192, 3616 free"),
], ids=["max-cores", "max-ram"])
def test_pool_limit_caps_the_instances_of_a_burst(env, aws, limit, itype,
                                                  fit, reason):
    pool = {"max-servers": 100, **limit}
    env.write_config([aws.provider(
        labels=[aws.label(**{"instance-type": itype})], pool_extra=pool)])
    launcher = env.start_launcher()
    [worker] = launcher.pool_workers().values()
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(BURST)]
    wait_for(lambda: len(_fulfilled(zuul, rids)) == fit,
             what=f"{fit} requests fulfilled")
    wait_for(lambda: pool_paused(env.client) and worker.paused_reason
             == reason, what=f"pool paused: {reason}")
    # A few more routing passes: nothing beyond the limit is launched.
    start = worker.passes
    wait_for(lambda: worker.passes >= start + 5, what="routing passes")
    assert len(_fulfilled(zuul, rids)) == fit
    assert len(aws.instances()) == fit
    assert _states(zuul, rids) <= {"fulfilled", "pending", "requested"}
    # Nodes coming back make room for the next ones (two rounds).  An
    # accepted request is deleted, so each round counts the rest.
    left = list(rids)
    for round_ in (1, 2):
        served = _fulfilled(zuul, left)
        left = [r for r in left if r not in served]
        nodes = [n for r in served for n in zuul.accept(r)]
        zuul.set_in_use(nodes)
        zuul.release(nodes)
        for node_id in nodes:
            zuul.wait_node_gone(node_id, timeout=30)
        wait_for(lambda: len(_fulfilled(zuul, left)) == fit,
                 what=f"round {round_}: the next {fit} fulfilled")
        start = worker.passes
        wait_for(lambda: worker.passes >= start + 5, what="routing passes")
        assert len(_fulfilled(zuul, left)) == fit
        assert len(aws.instances()) == fit
    assert _states(zuul, left) <= {"fulfilled", "pending", "requested"}
