"""Node lifecycle: min-ready, max-ready-age, holds, failures, reload."""

from __future__ import annotations

import json

from kazoo.exceptions import NoNodeError

from nodepool.driver import errors, fake

from nodepool.zk.paths import NODES
from tests.functional.launcher.helpers import fake_provider, wait_for


def ready_spares(zuul, label="small"):
    return [i for i, n in zuul.nodes().items()
            if n["state"] == "ready" and not n["allocated_to"]
            and label in n["type"]]


def test_min_ready_refill(env):
    env.write_config([fake_provider()],
                     labels=[{"name": "small", "min-ready": 2}])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: len(ready_spares(zuul)) == 2, what="two spares")
    # min-ready requests are gone once fulfilled
    wait_for(lambda: not env.client.get_children("/nodepool/requests"),
             what="min-ready requests deleted")
    first = set(ready_spares(zuul))
    rid = zuul.submit(["small"])
    req = zuul.wait_state(rid, {"fulfilled"})
    assert req["nodes"][0] in first            # a spare was reused
    nodes = zuul.accept(rid)
    wait_for(lambda: len(ready_spares(zuul)) == 2, what="refilled")
    zuul.release(nodes)


def test_min_ready_requests_use_priority_900_and_no_reuse(env):
    seen = []
    env.client.ensure_path("/nodepool/requests")

    def watch(children):
        for child in children:
            data = env.client.get(f"/nodepool/requests/{child}")[0]
            seen.append((child, json.loads(data)))
    env.client.ChildrenWatch("/nodepool/requests", watch)
    env.write_config([fake_provider()],
                     labels=[{"name": "small", "min-ready": 1}])
    env.start_launcher()
    wait_for(lambda: len(ready_spares(env.zuul)) == 1, what="spare")
    assert seen
    child, data = seen[0]
    assert child.startswith("900-")
    assert data["requestor"] == "NodePool:min-ready"
    assert data["reuse"] is False
    assert data["node_types"] == ["small"]


def test_max_ready_age_deletes_unallocated_only(env):
    env.write_config([fake_provider()],
                     labels=[{"name": "small", "max-ready-age": 1}])
    launcher = env.start_launcher(cleanup_interval=0.3)
    zuul = env.zuul
    keep = zuul.submit(["small"])
    kept_node = zuul.wait_state(keep, {"fulfilled"})["nodes"][0]
    spare = zuul.submit(["small"])
    spare_node = zuul.wait_state(spare, {"fulfilled"})["nodes"][0]
    zuul.delete_request(spare)      # its node is deallocated, then ages out
    zuul.wait_node_gone(spare_node, timeout=20)
    assert zuul.get_node(kept_node)["state"] == "ready"
    assert launcher is not None


def test_hold_expiration(env):
    env.write_config([fake_provider()], **{"max-hold-age": 3600})
    env.start_launcher(cleanup_interval=0.3)
    zuul = env.zuul
    rid = zuul.submit(["small", "small"])
    zuul.wait_state(rid, {"fulfilled"})
    short, forever = zuul.accept(rid)
    zuul.set_node(short, state="hold", hold_job="job", comment="debug",
                  hold_expiration="1")        # upstream writes a string
    zuul.set_node(forever, state="hold", hold_job="job",
                  hold_expiration="not-a-number")
    zuul.unlock_node(short)
    zuul.unlock_node(forever)
    zuul.wait_node_gone(short, timeout=20)
    assert zuul.get_node(forever)["state"] == "hold"


def test_launch_failure_retries_then_fails(env):
    env.write_config([fake_provider(**{"launch-retries": 2})])
    env.start_launcher()
    cloud = fake.cloud_for("fake-provider")
    cloud.create_errors = [errors.LaunchError("boom", stat_key="error.status")
                           for _ in range(2)]
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"failed", "fulfilled"})
    assert req["state"] == "failed"
    assert cloud.calls["create"] == 2


def first_create_fails(env, error, **settings):
    """One request, the fake cloud's first create failing with ``error``:
    (the request once fulfilled or failed, the cloud)."""
    env.write_config([fake_provider(**settings)])
    env.start_launcher()
    cloud = fake.cloud_for("fake-provider")
    cloud.create_errors = [error]
    rid = env.zuul.submit(["small"])
    return env.zuul.wait_state(rid, {"failed", "fulfilled"}), cloud


def test_transient_failure_is_retried_to_success(env):
    req, cloud = first_create_fails(env, errors.LaunchError("boom"),
                                    **{"launch-retries": 3})
    assert req["state"] == "fulfilled"
    assert cloud.calls["create"] == 2


def test_an_access_error_waits_for_the_gate_within_one_attempt(env):
    """The fake's create machine is the framework's: a refused credential
    holds the call until the provider's gate admits one again, then the
    same attempt sends it again (one attempt is all it is given)."""
    req, cloud = first_create_fails(
        env, errors.CredentialError("fake cloud: 401"),
        **{"launch-retries": 1, "launch-timeout": 60})
    assert req["state"] == "fulfilled"
    assert cloud.calls["create"] == 2


def test_quota_error_aborts_and_request_is_retried(env):
    req, cloud = first_create_fails(env, errors.QuotaError("over quota"))
    assert req["state"] == "fulfilled"
    assert req["declined_by"] == []
    assert cloud.calls["create"] == 2


def test_request_deleted_mid_flight_releases_nodes(env):
    env.write_config([fake_provider(**{"boot-time": 1.0})])
    env.start_launcher()
    zuul = env.zuul
    rid = zuul.submit(["small"])
    zuul.wait_state(rid, {"pending"})
    wait_for(lambda: zuul.nodes(), what="node created")
    zuul.delete_request(rid)
    node_id = next(iter(zuul.nodes()))
    # Deallocated, then unlocked (two writes): a new request reuses it
    # once both are done.
    def spare():
        node = zuul.get_node(node_id) or {}
        if node.get("state") != "ready" or node.get("allocated_to"):
            return False
        try:
            return not zuul.client.get_children(f"{NODES}/{node_id}/lock")
        except NoNodeError:
            return True
    wait_for(spare, what="node ready, unallocated and unlocked")
    rid2 = zuul.submit(["small"])
    assert zuul.wait_state(rid2, {"fulfilled"})["nodes"] == [node_id]


def test_unlocked_in_use_node_is_deleted(env):
    env.write_config([fake_provider()])
    env.start_launcher()
    zuul = env.zuul
    rid = zuul.submit(["small"])
    zuul.wait_state(rid, {"fulfilled"})
    (node_id,) = zuul.accept(rid)
    zuul.set_in_use([node_id])
    # While we hold the lock the node stays.
    assert zuul.get_node(node_id)["state"] == "in-use"
    zuul.unlock_node(node_id)      # the requester "died"
    zuul.wait_node_gone(node_id, timeout=15)


def test_config_reload_adds_and_removes_pools(env):
    label = [{"name": "small", "cloud-image": "fake-image"}]
    pool_a = {"name": "a", "max-servers": 5, "labels": label}
    pool_b = {"name": "b", "max-servers": 5, "labels": label}
    env.write_config([fake_provider(pools=[pool_a])])
    env.start_launcher()

    def pools():
        path = "/nodepool/components/pool"
        names = set()
        for child in env.client.get_children(path):
            try:
                data = env.client.get(f"{path}/{child}")[0]
            except NoNodeError:     # unregistered while we listed
                continue
            names.add(json.loads(data)["name"])
        return names
    wait_for(lambda: pools() == {"a"}, what="pool a registered")
    env.write_config([fake_provider(pools=[pool_a, pool_b])])
    wait_for(lambda: pools() == {"a", "b"}, timeout=30, what="pool b added")
    env.write_config([fake_provider(pools=[pool_b])])
    wait_for(lambda: pools() == {"b"}, timeout=30, what="pool a removed")
    rid = env.zuul.submit(["small"])
    req = env.zuul.wait_state(rid, {"fulfilled"})
    assert env.zuul.get_node(req["nodes"][0])["pool"] == "b"


def test_bad_config_on_reload_keeps_old_config(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    with open(env.config_path, "a") as f:
        f.write("\nbogus-key: 1\n")
    old = launcher.config
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    assert launcher.config is old
