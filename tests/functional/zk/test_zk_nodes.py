"""Nodes against a real ZooKeeper: field round trips, upstream shapes,
unknown keys, concurrent updates, bad znodes, removal."""

import json
import logging
import threading

from nodepool.zk import Node, NodeState
from nodepool.zk.paths import node_lock_path, node_path

FULL = dict(
    state_time=1700000000.5, created_time=1700000000.25, provider="aws",
    pool="main", type=["ubuntu", "big"], allocated_to="200-0000000001",
    launcher="host-PoolWorker.aws-main-0f", cloud="AWS",
    region="us-east-1", az="us-east-1a", host_id="h-1", external_id="i-1",
    hostname="np0000000001", interface_ip="10.1.1.1",
    public_ipv4="198.51.100.1", private_ipv4="10.1.1.1",
    public_ipv6="2001:db8::1", connection_type="ssh", connection_port=2022,
    username="ubuntu", python_path="/usr/bin/python3", shell_type="sh",
    host_keys=["ssh-ed25519 AAAAC3"], image_id="ami-1",
    resources={"cores": 2, "ram": 4096, "instances": 1, "L-1216C47A": 2},
    attributes={"team": "ci"}, tenant_name="tenant-a", requestor="zuul-1",
    slot=3, driver_data={"spot_request": "sir-1"},
    node_properties={"spot": True, "fleet": False}, comment="held",
    user_data={"note": 1}, hold_job="tenant/project/job",
    hold_expiration=7200)


def raw_json(zk, node_id):
    kazoo = zk.kazoo()
    try:
        return json.loads(kazoo.get(node_path(node_id))[0])
    finally:
        kazoo.stop()


def test_every_field_round_trips_over_tls(zk, zk_factory, wait_for):
    api = zk_factory(tls=True)
    node = Node(state=NodeState.READY, **FULL)
    api.store_node(node)
    assert node.id is not None and len(node.id) == 10
    for cached in (False, True):
        read = wait_for(lambda: api.get_node(node.id, cached=cached))
        for key, value in FULL.items():
            assert getattr(read, key) == value, (cached, key)
        assert read.state == NodeState.READY
    data = raw_json(zk, node.id)
    assert data["ssh_port"] == 2022
    assert "id" not in data  # the znode name is authoritative


def test_new_node_gets_init_state_and_times(zkapi):
    node = Node(provider="p", type=["x"])
    zkapi.store_node(node)
    read = zkapi.get_node(node.id)
    assert read.state == NodeState.INIT
    assert read.created_time == read.state_time is not None


def test_upstream_written_node_is_read_and_rewritten_faithfully(zk, zkapi):
    upstream = {"state": "hold", "state_time": 5.0, "type": "ubuntu",
                "hold_expiration": "3600", "provider": "aws",
                "external_id": {"host": "h-0a", "instance": "i-0b"},
                "ssh_port": 22, "span_info": {"traceparent": "00-ab-cd"}}
    kazoo = zk.kazoo()
    path = kazoo.create("/nodepool/nodes/", json.dumps(upstream).encode(),
                        sequence=True, makepath=True)
    kazoo.stop()
    node_id = path.rsplit("/", 1)[1]
    node = zkapi.get_node(node_id)
    assert node.type == ["ubuntu"]
    assert node.hold_expiration == 3600
    assert node.external_id == {"host": "h-0a", "instance": "i-0b"}
    node.comment = "operator"
    zkapi.store_node(node)
    data = raw_json(zk, node_id)
    assert data["span_info"] == {"traceparent": "00-ab-cd"}
    assert data["type"] == ["ubuntu"] and data["comment"] == "operator"
    assert data["external_id"] == {"host": "h-0a", "instance": "i-0b"}
    assert data["node_properties"] == {} and data["tenant_name"] is None


def test_concurrent_update_by_another_client_is_not_lost(zk, zkapi):
    node = Node(state=NodeState.READY, provider="p", type=["x"])
    zkapi.store_node(node)
    stale = zkapi.get_node(node.id)
    # Zuul rewrites the node meanwhile (its own key plus an unknown one).
    kazoo = zk.kazoo()
    data = json.loads(kazoo.get(node_path(node.id))[0])
    data.update(user_data={"zuul": True}, span_info="s1")
    kazoo.set(node_path(node.id), json.dumps(data).encode())
    kazoo.stop()
    stale.set_state(NodeState.HOLD)
    stale.comment = "mine"
    zkapi.store_node(stale)  # BadVersion → merge → retry
    final = raw_json(zk, node.id)
    assert final["state"] == "hold" and final["comment"] == "mine"
    assert final["user_data"] == {"zuul": True}
    assert final["span_info"] == "s1"
    assert stale.stat.version == 2


def test_bad_znodes_are_skipped_and_logged_with_path(zk, zkapi, caplog,
                                                     wait_for):
    good = Node(state=NodeState.READY)
    zkapi.store_node(good)
    kazoo = zk.kazoo()
    bad = {"0000009991": b"{not json", "0000009992": b'{"state": "weird"}',
           "0000009993": b"", "0000009994": b"[1, 2]"}
    for node_id, payload in bad.items():
        kazoo.create(node_path(node_id), payload, makepath=True)
    kazoo.stop()
    caplog.set_level(logging.INFO, logger="nodepool.zk")
    assert [n.id for n in zkapi.iter_nodes(cached=False)] == [good.id]
    wait_for(lambda: len(zkapi.caches.children("/nodepool/nodes")) == 5)
    wait_for(lambda: all(zkapi.caches.get(node_path(i)) for i in bad))
    assert [n.id for n in zkapi.iter_nodes(cached=True)] == [good.id]
    for node_id in bad:
        assert node_path(node_id) in caplog.text, node_id
        assert zkapi.get_node(node_id) is None
    # Logged once per znode version, not once per pass.
    assert caplog.text.count(node_path("0000009991")) == 1


def test_delete_node_removes_znode_and_lock_dir(zk, zkapi):
    node = Node(state=NodeState.USED, provider="p")
    zkapi.store_node(node)
    zkapi.lock_node(node, blocking=False)
    zkapi.delete_node(node)
    assert node.state == NodeState.DELETED and node.lock is None
    kazoo = zk.kazoo()
    try:
        assert kazoo.exists(node_path(node.id)) is None
    finally:
        kazoo.stop()
    assert zkapi.get_node(node.id) is None


def locked_deleting_node(zkapi) -> Node:
    node = Node(state=NodeState.DELETING, provider="p")
    zkapi.store_node(node)
    zkapi.lock_node(node, blocking=False)
    return node


def test_delete_node_is_one_transaction_while_nobody_waits(zk, zkapi):
    node = locked_deleting_node(zkapi)
    calls = []
    commit = zkapi._commit_async
    zkapi._commit_async = lambda txn, what: calls.append(
        [type(op).__name__ for op in txn.operations]) or commit(txn, what)
    zkapi.delete_node(node)
    # Written deleted, our contender, the lock directory and the znode
    # removed: all in the one transaction, nothing sent after it.
    assert calls == [["SetData", "Delete", "Delete", "Delete"]]
    assert node.lock is None
    assert zkapi.get_node(node.id) is None


def raced_deleting_node(zkapi, kazoo) -> tuple[Node, list]:
    """A locked ``deleting`` node whose lock another launcher waits for
    (its contender is there, so the one transaction does not apply and
    the steps go one by one), and the states ``store_node`` writes."""
    node = locked_deleting_node(zkapi)
    stored = []
    store = zkapi.store_node
    zkapi.store_node = lambda n: stored.append(n.state) or store(n)
    kazoo.create(node_lock_path(node.id) + "/racer-lock-", b"",
                 ephemeral=True, sequence=True)
    return node, stored


def test_delete_node_with_a_racer_waiting_writes_deleted_first(zk, zkapi):
    kazoo = zk.kazoo()
    try:
        node, stored = raced_deleting_node(zkapi, kazoo)
        zkapi.delete_node(node)
        assert kazoo.exists(node_path(node.id)) is None
    finally:
        kazoo.stop()
    # ``deleted`` was written on its own before the removal, for the racer.
    assert stored == [NodeState.DELETED]
    assert node.lock is None


def test_delete_node_written_by_another_client_meanwhile(zk, zkapi):
    node = locked_deleting_node(zkapi)
    kazoo = zk.kazoo()
    try:
        data = json.loads(kazoo.get(node_path(node.id))[0])
        data["comment"] = "changed"
        kazoo.set(node_path(node.id), json.dumps(data).encode())
    finally:
        kazoo.stop()
    zkapi.delete_node(node)     # the version we hold is old: one by one
    assert zkapi.get_node(node.id) is None
    assert node.lock is None


def test_delete_node_async_sends_all_before_any_reply_is_waited_for(
        zk, zkapi):
    # The provider's loop removes the znodes of deleted nodes this way:
    # 30 transactions in flight at once, each settled when its reply is in.
    nodes = [locked_deleting_node(zkapi) for _ in range(30)]
    woken = threading.Semaphore(0)
    pending = []
    for node in nodes:
        removal = zkapi.delete_node_async(node)
        removal.on_done(woken.release)
        pending.append(removal)
    for _ in nodes:
        assert woken.acquire(timeout=20)
    assert all(p.done() for p in pending)
    for removal in pending:
        removal.finish()
    assert all(n.lock is None and n.state == NodeState.DELETED
               for n in nodes)
    kazoo = zk.kazoo()
    try:
        assert not [n.id for n in nodes
                    if kazoo.exists(node_path(n.id)) is not None
                    or kazoo.exists(node_lock_path(n.id)) is not None]
    finally:
        kazoo.stop()


def test_delete_node_async_with_a_racer_goes_step_by_step(zk, zkapi):
    kazoo = zk.kazoo()
    try:
        node, stored = raced_deleting_node(zkapi, kazoo)
        removal = zkapi.delete_node_async(node)
        done = threading.Event()
        removal.on_done(done.set)
        assert done.wait(20)
        # The transaction did not apply: nothing changed until finish().
        assert kazoo.exists(node_path(node.id)) is not None
        removal.finish()
        assert kazoo.exists(node_path(node.id)) is None
    finally:
        kazoo.stop()
    assert stored == [NodeState.DELETED]
    assert node.lock is None


def test_empty_node_znodes_are_cleaned_up(zk, zkapi):
    keep = Node(state=NodeState.READY)
    zkapi.store_node(keep)
    kazoo = zk.kazoo()
    # What kazoo's own Lock recipe leaves behind on a removed node.
    kazoo.ensure_path(node_lock_path("0000000777"))
    # Empty but someone is contending: not ours to remove yet.
    kazoo.create(node_lock_path("0000000778") + "/x__lock__", b"",
                 makepath=True, sequence=True, ephemeral=True)
    removed = zkapi.delete_empty_node_znodes()
    assert removed == ["0000000777"]
    assert kazoo.exists(node_path("0000000778")) is not None
    kazoo.stop()
    assert zkapi.get_node(keep.id) is not None


def test_erase_provider_nodes(zkapi):
    mine = [Node(state=NodeState.READY, provider="gone") for _ in range(3)]
    other = Node(state=NodeState.READY, provider="stays")
    for node in mine + [other]:
        zkapi.store_node(node)
    zkapi.lock_node(mine[0])  # erase does not care about locks
    assert zkapi.erase_provider_nodes("gone") == 3
    assert [n.id for n in zkapi.iter_nodes(cached=False)] == [other.id]
