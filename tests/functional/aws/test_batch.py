"""Batched creates and deletes, seen from the cloud's side of the proxy."""

from __future__ import annotations

from nodepool.driver.aws import batchtags
from tests.functional.aws.helpers import adapter_of, instance_id, tags
from tests.functional.launcher.helpers import fulfil_all as _fulfil_all
from tests.functional.launcher.helpers import wait_for


def _instance(aws, iid) -> dict:
    [record] = aws.instances(**{"instance-id": [iid]})
    return record


def test_four_concurrent_requests_then_batched_terminate(env, aws):
    env.write_config([aws.provider()])
    env.start_launcher()
    zuul = env.zuul
    rids = [zuul.submit(["small"]) for _ in range(4)]
    _fulfil_all(env, rids)
    instances = {instance_id(zuul.get_node(n))
                 for rid in rids for n in zuul.get_request(rid)["nodes"]}
    assert len(instances) == 4
    held = [n for rid in rids for n in zuul.accept(rid)]
    zuul.set_in_use(held)
    zuul.release(held)
    for node_id in held:
        zuul.wait_node_gone(node_id, timeout=20)
    wait_for(lambda: not aws.instances(), what="instances terminated")
    terminate = aws.local.stats()["terminate_instances"]
    assert terminate["instance_ids"] == 4
    assert terminate["calls"] < 4       # batched, not one call per node


def test_batched_create_maps_each_instance_to_its_node(env, aws):
    # One call per second: the launches queued behind the first call
    # surely share the second one, however slow this machine is today.
    env.write_config([aws.provider(rate=1)])
    launcher = env.start_launcher()
    rid = env.zuul.submit(["small"] * 5)
    nodes = _fulfil_all(env, [rid])
    run = aws.local.stats()["run_instances"]
    assert run["launched"] == 5
    assert run["calls"] < 5               # some launches shared a call
    assert max(c["max_count"] for c in run["instances"]) > 1
    external = {n: instance_id(env.zuul.get_node(n)) for n in nodes}
    assert len(set(external.values())) == 5
    adapter = adapter_of(launcher)
    adapter.forget_listing()
    listed = {i.external_id: i.node_id for i in adapter.list_instances()}
    for node_id, iid in external.items():
        assert listed[iid] == node_id
        # The batch tags written at creation name the node on their own
        # (launch index → slot), before and without the per-node tags.
        record = _instance(aws, iid)
        raw = tags(record)
        if batchtags.BATCH_ID in raw:
            # from creation: the batch's anchor, or (retagged) its own
            anchor = batchtags.decode(raw)[0]
            assert raw["nodepool_node_id"] in (anchor, node_id)
            assert batchtags.node_id_of(
                raw, record["AmiLaunchIndex"]) == node_id
            shared = {k: v for k, v in raw.items()
                      if k != "nodepool_node_id"}
            assert batchtags.node_id_of(
                shared, record["AmiLaunchIndex"]) == node_id
    # Then each instance gets its own per-node tags.
    batched = sum(c["launched"] for c in run["instances"]
                  if c["max_count"] > 1)
    wait_for(lambda: adapter.tagger.stats()["tagged"] >= batched,
             timeout=30, what="per-node tags")
    for node_id, iid in external.items():
        record_tags = tags(_instance(aws, iid))
        assert record_tags["nodepool_node_id"] == node_id
        assert record_tags["Name"] == f"np{node_id}"
        assert record_tags["nodepool_provider_name"] == "aws"


def test_partial_fulfilment_launches_the_rest_again(env, aws):
    # "min": the fake starts only MinCount (1) instance per call, the
    # worst case of EC2 answering a MinCount=1/MaxCount=N call.
    aws.local.configure(launch="min")
    env.write_config([aws.provider(rate=1)])
    launcher = env.start_launcher()
    rid = env.zuul.submit(["small"] * 3)
    nodes = _fulfil_all(env, [rid])
    external = {instance_id(env.zuul.get_node(n)) for n in nodes}
    assert len(external) == 3
    assert adapter_of(launcher).creator.partial >= 1
    run = aws.local.stats()["run_instances"]
    assert run["launched"] == 3
    assert any(c["max_count"] > c["launched"] for c in run["instances"])
    assert len(aws.instances()) == 3      # nothing extra left behind


def test_partial_fulfilment_of_a_30_node_burst_shrinks_the_calls(env, aws):
    # A zone short of capacity answers every call with one instance.  The
    # rest of each call is sent again at once, and after the first partial
    # answer the calls ask for what the cloud starts: 30 nodes need about
    # 30 calls, no growing back-off between them, no extra instance.
    aws.local.configure(launch="min")
    env.write_config([aws.provider(rate=20, pool_extra={"max-servers": 40})])
    launcher = env.start_launcher()
    rids = [env.zuul.submit(["small"]) for _ in range(30)]
    nodes = _fulfil_all(env, rids)
    assert len({instance_id(env.zuul.get_node(n)) for n in nodes}) == 30
    run = aws.local.stats()["run_instances"]
    assert run["launched"] == 30
    assert len(aws.instances()) == 30     # instances = nodes
    sizing = adapter_of(launcher).create_sizing
    assert sizing.partial >= 1
    # Once the cloud showed it starts one per call, calls ask for one: only
    # the calls sent before the first answer was learned asked for more (a
    # new kind's calls take a quarter of the queue each, 8, 6, 4, ... of 30, or
    # less while requests still trickle in); the later half of the calls
    # ask for one (two when probing whether the zone recovered).
    asked = [c["max_count"] for c in run["instances"]]
    assert len(asked) <= 33, asked
    assert max(asked[len(asked) // 2:]) <= 2, asked
    assert sum(asked) <= 2 * 30 + 30, asked   # no lock-step re-batching
    # The learned call size for this label's launches is one (two once a
    # run of full answers of one made the batcher probe for more).
    [size] = sizing.learned().values()
    assert size in (1, 2)


def test_batch_creates_off_sends_one_call_per_node(env, aws):
    env.write_config([aws.provider(**{"batch-creates": False})])
    env.start_launcher()
    rid = env.zuul.submit(["small"] * 3)
    _fulfil_all(env, [rid])
    run = aws.local.stats()["run_instances"]
    assert run["calls"] == 3
    assert all(c["max_count"] == 1 for c in run["instances"])


def test_first_node_ready_soon_after_its_instance_runs(env, aws):
    # No 10 s describe cache: the node is READY well within 2 s of the
    # RunInstances answer (moto's instances run from their first describe).
    env.write_config([aws.provider()])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    [node_id] = _fulfil_all(env, [rid])
    [call] = aws.local.stats()["run_instances"]["instances"]
    ready_at = env.zuul.get_node(node_id)["state_time"]
    assert 0 < ready_at - call["time"] < 2.0


def test_a_scarce_rate_sends_a_new_kinds_burst_in_full_calls(env, aws):
    # Half a call per second against 3 s calls: less than two calls start
    # while one is in flight, so a new kind's launches are not spread over
    # calls of a quarter of the queue.  The call made while the first is
    # still unanswered (the kind unproven) takes everything queued then,
    # not a quarter of it (at most 8 of the 30).
    aws.local.configure(run_instances_latency=3.0)
    env.write_config([aws.provider(rate=0.5,
                                   pool_extra={"max-servers": 40})])
    launcher = env.start_launcher()
    try:
        rids = [env.zuul.submit(["small"]) for _ in range(10)]
        wait_for(lambda: aws.local.stats()["in_flight"].get(
            "RunInstances"), timeout=20,
            what="the first RunInstances in flight")
        rids += [env.zuul.submit(["small"]) for _ in range(20)]
        nodes = _fulfil_all(env, rids)
    finally:
        aws.local.configure(run_instances_latency=0.05)
    assert len({instance_id(env.zuul.get_node(n)) for n in nodes}) == 30
    asked = [c["max_count"] for c in aws.local.stats()["run_instances"][
        "instances"]]
    assert sum(asked) == 30 and asked[1] >= 12, asked
    assert adapter_of(launcher)._create_slots() < 2
