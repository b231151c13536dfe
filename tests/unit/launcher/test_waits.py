"""The reasons of ``nodepool.launcher.waits``: every kind's text and
details, a handler's reason, and a queued request naming what it waits
behind.  Pure functions over small records; no ZooKeeper."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.launcher import waits
from nodepool.launcher.quota import Verdict, tenant_verdict
from nodepool.driver.quota import Quota
from nodepool.zk.models import Node, NodeRequest, NodeState
from nodepool.zk.offering import Offering
from nodepool.zk.waits import KINDS


def test_at_quota_names_the_limit_and_what_is_free():
    reason = waits.at_quota(Verdict(False, "pool max-cores", "cores", 2.0,
                                    8))
    assert reason == waits.Reason(
        "quota", "at quota: pool max-cores reached: cores needs 8, 2 free",
        {"limit": "pool max-cores", "resource": "cores", "need": 8,
         "free": 2})


def test_a_tenant_limit_is_a_quota_reason_too():
    nodes = [Node(tenant_name="t1", resources={"cores": 6})]
    verdict = tenant_verdict({"t1": {"cores": 8}}, "t1",
                             Quota(cores=4), nodes)
    reason = waits.at_quota(verdict)
    assert reason.text == ("at quota: tenant-resource-limits of t1 "
                           "reached: cores needs 4, 2 free")


def test_quota_without_a_verdict_is_the_cloud_refusing_a_node():
    reason = waits.at_quota(None)
    assert reason.kind == "quota" and "cloud refused" in reason.text


def test_an_offering_says_until_when_in_utc_and_keeps_one_line():
    record = Offering(provider="aws", key="subnet-1/t3.large",
                      until=1_700_000_000.0,
                      reason="InsufficientInstanceCapacity:\n" + "x" * 500)
    reason = waits.offering(record, ["big", "big"])
    assert reason.text.startswith(
        "offering subnet-1/t3.large unavailable until 2023-11-14T22:13:20Z "
        "for label(s) big: InsufficientInstanceCapacity: xxx")
    assert "\n" not in reason.text
    assert len(reason.text) < 250
    assert reason.details == {"offering": "subnet-1/t3.large",
                              "until": 1_700_000_000.0, "labels": ["big"]}


def test_throttled_static_slot_and_capacity():
    assert waits.throttled("aws", 4).text == (
        "throttled: provider aws has max-concurrency 4 launches in "
        "progress or being taken")
    assert waits.no_capacity(["b", "a"], static=True) == waits.Reason(
        "static-slot", "waiting for a free static slot for label(s) a,b",
        {"labels": ["a", "b"]})
    assert waits.no_capacity(["a"], static=False).kind == "capacity"


def test_declined_reasons_by_cause():
    no_pool = waits.declined("node type(s) [ghost] not available",
                             ["ghost", "small"], {"small"}, {})
    assert no_pool == waits.Reason("no-pool",
                                   "no pool serves label(s) ghost",
                                   {"labels": ["ghost"]})
    image = waits.declined("images are not available", ["disk"], {"disk"},
                           {"disk": "ubuntu"})
    assert image.text == "image not ready in this pool for disk (ubuntu)"
    assert image.details == {"labels": ["disk"], "images": ["ubuntu"]}
    # Served elsewhere (only not here): a plain decline.
    other = waits.declined("node type(s) [gpu] not available", ["gpu"],
                           {"gpu"}, {})
    assert other == waits.Reason(
        "declined", "declined by this pool: node type(s) [gpu] not "
        "available", {"reason": "node type(s) [gpu] not available"})


def test_declined_here_finds_the_missing_images():
    labels = {"disk": SimpleNamespace(diskimage="ubuntu", cloud_image=None),
              "small": SimpleNamespace(diskimage=None, cloud_image="ami")}
    pool = SimpleNamespace(labels=labels)
    request = NodeRequest(node_types=["disk", "small"])
    components = [SimpleNamespace(id="p1", supported_labels=["disk",
                                                              "small"])]
    reason = waits.declined_here(
        "images are not available", request, pool, {"p1"}, components,
        lambda label: label.diskimage is None)
    assert reason.kind == "image" and reason.details["labels"] == ["disk"]


def _handler(rid="100-0000000001", labels=("small",), paused=False,
             verdict=None, nodes=(), retry=None, done=False):
    return SimpleNamespace(
        request=NodeRequest(id=rid, node_types=list(labels)),
        paused=paused, verdict=verdict, nodes=list(nodes), retry=retry,
        done=done)


def test_handler_reasons():
    at = Verdict(False, "pool max-servers", "instances", 0, 1)
    assert waits.handler_reason(_handler(paused=True, verdict=at),
                                True).kind == "quota"
    assert waits.handler_reason(_handler(paused=True), False).kind == \
        "static-slot"
    building = Node(id="0000000007", state=NodeState.BUILDING)
    ready = Node(id="0000000008", state=NodeState.READY)
    reason = waits.handler_reason(_handler(nodes=[ready, building, None]),
                                  True)
    assert reason == waits.building(["0000000007"])
    assert waits.handler_reason(_handler(nodes=[ready]), True) is None
    # Retrying after ZooKeeper trouble, or done: no reason of its own.
    assert waits.handler_reason(_handler(paused=True, verdict=at,
                                         retry=print), True) is None
    assert waits.handler_reason(_handler(done=True), True) is None


def test_a_handler_still_building_the_same_nodes_makes_no_new_reason():
    # The pool worker asks every handler each pass (20 a second while
    # launches run): one whose nodes did not change gets the same record
    # back, not a new one to build and compare.
    nodes = [Node(id="0000000007", state=NodeState.BUILDING),
             Node(id="0000000009", state=NodeState.INIT)]
    handler = _handler(nodes=nodes)
    first = waits.handler_reason(handler, True)
    assert waits.handler_reason(handler, True) is first
    assert first.details == {"nodes": ["0000000007", "0000000009"]}
    assert "0000000007,0000000009" in first.text
    # A node that moves on changes the reason.
    nodes[0].state = NodeState.READY
    assert waits.handler_reason(handler, True) == \
        waits.building(["0000000009"])


def test_a_queued_request_names_the_one_it_waits_behind():
    at = Verdict(False, "pool max-servers", "instances", 0, 1)
    first = _handler("100-0000000001", paused=True, verdict=at)
    reasons = {"100-0000000001": waits.at_quota(at),
               "100-0000000005": waits.queued(["small"]),
               "100-0000000006": waits.queued(["other"])}
    waits._name_blockers(reasons, [first])
    assert reasons["100-0000000005"].text == (
        "queued behind request 100-0000000001, which waits at quota: pool "
        "max-servers reached: instances needs 1, 0 free")
    assert reasons["100-0000000005"].details["behind"] == "100-0000000001"
    # Nothing of its label waits in a handler: unchanged.
    assert reasons["100-0000000006"] == waits.queued(["other"])


def test_every_builder_makes_a_known_kind():
    record = Offering(provider="p", key="k", until=1.0, reason="r")
    reasons = [waits.at_quota(None), waits.offering(record, ["a"]),
               waits.throttled("p", 1), waits.no_capacity(["a"], True),
               waits.no_capacity(["a"], False), waits.queued(["a"]),
               waits.starved(60), waits.building(["1"]),
               waits.declined("x", ["a"], {"a"}, {})]
    assert {r.kind for r in reasons} <= set(KINDS)
    assert all(r.text and "\n" not in r.text for r in reasons)
