"""Nova's "No valid host was found" marks the offering (zones, flavor)
unavailable instead of spending launch retries (issue "pressure" item 2).
"""

from __future__ import annotations

from tests.functional.launcher.helpers import wait_for
from tests.functional.openstack.helpers import provider


def test_no_valid_host_marks_the_offering(env, cloud):
    env.write_config([provider(**{"launch-retries": 1})])
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["os"]
    manager.offerings.base_ttl = 1.5
    cloud.fail_next_creates(1, kind="error", message="No valid host was "
                            "found. There are not enough hosts available.")
    rid = env.zuul.submit(["small"])
    key = manager.adapter.offering(manager.provider.pools["main"],
                                   manager.provider.pools["main"].labels[
                                       "small"])
    wait_for(lambda: manager.offerings.records.get_offering("os", key),
             what="offering recorded")
    assert "No valid host" in manager.offerings.records.get_offering(
        "os", key).reason
    # launch-retries 1: a failed attempt would fail the request; the
    # capacity error aborts instead, and the request is served later.
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled"
    wait_for(lambda: len(cloud.servers()) == 1, what="error server deleted")
