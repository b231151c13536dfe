"""Requests against a real ZooKeeper: naming, ordering, merges, lock
directories, ephemeral requests (zookeeper.md §3, §4, §9.1)."""

import json
import random
import time


from nodepool.zk import NodeRequest, RequestState
from nodepool.zk.paths import request_lock_path, request_path


def test_submit_names_and_fields(zk, zkapi):
    request = NodeRequest(node_types=["a", "a"], requestor="zuul",
                          event_id="e1", tenant_name="t")
    request_id = zkapi.submit_request(request, priority="200")
    assert request_id == request.id
    prio, seq = request_id.split("-")
    assert prio == "200" and len(seq) == 10 and seq.isdigit()
    kazoo = zk.kazoo()
    data = json.loads(kazoo.get(request_path(request_id))[0])
    kazoo.stop()
    assert data["state"] == "requested"
    assert data["created_time"] == data["state_time"] is not None
    assert data["node_types"] == ["a", "a"] and data["reuse"] is True


def test_fifty_requests_come_out_in_specified_order(zk, zkapi, wait_for):
    rng = random.Random(7)
    kazoo = zk.kazoo()
    expected = []
    for _ in range(50):
        prio = rng.choice(["100", "200", "300", "900"])
        rel = rng.randint(0, 4)
        body = {"state": "requested", "node_types": ["x"],
                "relative_priority": rel}
        path = kazoo.create(f"/nodepool/requests/{prio}-",
                            json.dumps(body).encode(), sequence=True,
                            makepath=True)
        seq = path.rsplit("-", 1)[1]
        expected.append((prio, rel, seq, path.rsplit("/", 1)[1]))
    kazoo.stop()
    want = [e[3] for e in sorted(expected)]
    assert [r.id for r in zkapi.iter_requests(cached=False)] == want
    wait_for(lambda: [r.id for r in zkapi.iter_requests()] == want,
             message="cached order")


def test_relative_priority_rewrite_changes_order(zk, zkapi, wait_for):
    first = NodeRequest(node_types=["x"])
    second = NodeRequest(node_types=["x"])
    zkapi.submit_request(first, priority="200")
    zkapi.submit_request(second, priority="200")
    assert [r.id for r in zkapi.iter_requests(cached=False)] == \
        [first.id, second.id]
    first.relative_priority = 3
    zkapi.store_request(first)
    wait_for(lambda: [r.id for r in zkapi.iter_requests()] ==
             [second.id, first.id], message="re-ordered cache")


def test_requester_change_survives_launcher_write(zk, zkapi):
    request = NodeRequest(node_types=["x"])
    zkapi.submit_request(request, priority="100")
    launcher_copy = zkapi.get_request(request.id)
    kazoo = zk.kazoo()
    data = json.loads(kazoo.get(request_path(request.id))[0])
    data.update(relative_priority=9, span_info={"t": 1})
    kazoo.set(request_path(request.id), json.dumps(data).encode())
    launcher_copy.set_state(RequestState.PENDING)
    zkapi.store_request(launcher_copy)
    final = json.loads(kazoo.get(request_path(request.id))[0])
    kazoo.stop()
    assert final["state"] == "pending"
    assert final["relative_priority"] == 9
    assert final["span_info"] == {"t": 1}


def test_lock_dirs_are_listed_with_mtime_and_removable(zkapi):
    request = NodeRequest(node_types=["x"])
    zkapi.submit_request(request)
    before = time.time()
    zkapi.lock_request(request)
    zkapi.unlock_request(request)
    dirs = dict(zkapi.iter_request_lock_dirs())
    assert set(dirs) == {request.id}
    assert abs(dirs[request.id] - before) < 60
    zkapi.delete_request_lock_dir(request.id)
    assert list(zkapi.iter_request_lock_dirs()) == []
    assert zkapi.kazoo.exists(request_lock_path(request.id)) is None


def test_ephemeral_request_vanishes_with_its_session(zk, zkapi, zk_factory):
    other = zk_factory(cache=False)
    request = NodeRequest(node_types=["x"], requestor="NodePool:min-ready",
                          reuse=False)
    other.submit_request(request, priority="900", ephemeral=True)
    assert zkapi.get_request(request.id).reuse is False
    other.client.disconnect()
    assert zkapi.get_request(request.id) is None


def test_delete_request(zkapi):
    request = NodeRequest(node_types=["x"])
    zkapi.submit_request(request)
    zkapi.delete_request(request)
    assert zkapi.get_request(request.id) is None
    zkapi.delete_request(request)  # idempotent


