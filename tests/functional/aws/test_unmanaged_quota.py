"""Unmanaged quota as upstream counts it (parity item 6): an instance
tagged with our provider but with no node id, or one ZooKeeper does not
know, uses the account's quota like any instance of another provider; so
does one of another installation, whatever its node id."""

from __future__ import annotations

import pytest

from tests.functional.aws.helpers import pool_paused
from tests.functional.launcher.helpers import wait_for


@pytest.mark.parametrize("tags", [
    {"nodepool_provider_name": "aws", "nodepool_node_id": "9999999999"},
    {"nodepool_provider_name": "aws"},
    {"nodepool_provider_name": "other", "nodepool_node_id": "0000000001"},
    # Another installation (another ZooKeeper) sharing the account and the
    # provider name: its node 0000000000 is not ours, whose first node has
    # the same id.
    {"nodepool_provider_name": "aws", "nodepool_node_id": "0000000000",
     "nodepool_installation": "another-installation"},
], ids=["our-provider-unknown-node", "our-provider-no-node-id",
        "other-provider", "other-installation"])
def test_unmanaged_instances_use_quota(env, aws, tags):
    # 4 vCPUs of standard on-demand quota: two t3.medium (2 vCPUs each).
    # One is taken by an instance this launcher does not manage.
    aws.local.configure(quotas={"ec2": {"L-1216C47A": 4}})
    aws.run_tagged(tags, instance_type="t3.medium")
    env.write_config([aws.provider()])
    env.start_launcher()
    zuul = env.zuul
    first = zuul.submit(["small"])
    assert zuul.wait_state(first, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    held = zuul.accept(first)
    assert held == ["0000000000"]     # what "other-installation" names
    second = zuul.submit(["small"])
    wait_for(lambda: pool_paused(env.client), what="pool paused at quota")
    assert zuul.get_request(second)["state"] == "pending"
    zuul.release(held)
    assert zuul.wait_state(second, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
