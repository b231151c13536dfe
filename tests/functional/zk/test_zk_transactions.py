"""Locks taken and released inside multi-op transactions, and asynchronous
node writes (the launcher's hot path), against the real ZooKeeper.

The contender a transaction creates must look exactly like one of kazoo's
Lock recipe (other launchers, upstream's included, order by it); a
transaction that cannot apply must change nothing.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from kazoo.recipe.lock import Lock

from nodepool.zk import LockError, Node, NodeRequest, NodeState
from nodepool.zk.paths import (REQUEST_LOCKS, node_lock_path, node_path, request_lock_path,
                               request_path)
from tools.zookeeper import TcpGate

CONTENDER = re.compile(r"^[0-9a-f]{32}__lock__\d{10}$")


def new_request(api) -> NodeRequest:
    request = NodeRequest(node_types=["x"])
    api.submit_request(request, priority="200")
    return api.get_request(request.id)


def new_node(api, state=NodeState.INIT) -> Node:
    node = Node(state=state, provider="p", type=["x"])
    api.store_node(node)
    return node


def children(api, path):
    return api.kazoo.get_children(path) if api.kazoo.exists(path) else []


def test_lock_and_store_request_in_one_transaction(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    request = new_request(api)
    request.set_state("pending")
    assert api.lock_and_store_request(request) is True
    names = children(api, request_lock_path(request.id))
    assert len(names) == 1 and CONTENDER.match(names[0])
    assert request.lock.is_acquired
    assert api.get_request(request.id).state == "pending"
    # Another client's kazoo recipe sees our contender as the holder.
    theirs = Lock(other.kazoo, request_lock_path(request.id))
    assert theirs.acquire(blocking=False) is False
    api.unlock_request(request)
    assert children(api, request_lock_path(request.id)) == []
    theirs = Lock(other.kazoo, request_lock_path(request.id))
    assert theirs.acquire(blocking=False) is True
    theirs.release()


def test_lock_and_store_request_changes_nothing_when_locked_before(
        zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    request = new_request(api)
    theirs = Lock(other.kazoo, request_lock_path(request.id))
    assert theirs.acquire(blocking=False)
    request.set_state("pending")
    assert api.lock_and_store_request(request) is False
    assert request.lock is None
    assert api.get_request(request.id).state == "requested"
    assert len(children(api, request_lock_path(request.id))) == 1
    theirs.release()
    # The lock directory now exists: still no fast path (the recipe and a
    # re-read are needed), still nothing changed.
    assert api.lock_and_store_request(request) is False
    assert children(api, request_lock_path(request.id)) == []


def test_lock_and_store_request_refuses_a_changed_request(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    request = new_request(api)
    mine = request.clone()
    mine.stat = request.stat
    request.relative_priority = 5          # Zuul changes it meanwhile
    other.store_request(request)
    mine.set_state("pending")
    assert api.lock_and_store_request(mine) is False
    stored = api.get_request(request.id)
    assert stored.state == "requested" and stored.relative_priority == 5
    assert children(api, request_lock_path(request.id)) == []


def test_lock_new_node_writes_and_locks_at_once(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    node = new_node(api)
    node.set_state(NodeState.BUILDING)
    node.hostname = "np" + node.id
    api.lock_new_node(node)
    names = children(api, node_lock_path(node.id))
    assert len(names) == 1 and CONTENDER.match(names[0])
    fresh = other.get_node(node.id)
    assert fresh.state == NodeState.BUILDING and fresh.hostname == node.hostname
    assert other.is_locked(fresh, cached=False)
    # Our record carries the new version: the next write needs no merge.
    node.set_state(NodeState.READY)
    api.store_node(node)
    assert other.get_node(node.id).state == NodeState.READY
    api.unlock_node(node)
    assert not other.is_locked(fresh, cached=False)


def test_lock_new_node_falls_back_when_someone_holds_the_lock(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    node = new_node(api)
    theirs = other.get_node(node.id)
    other.lock_node(theirs, blocking=False)
    node.set_state(NodeState.BUILDING)
    # Falls back to waiting for the lock: times out while they hold it,
    # having written nothing.
    try:
        api.lock_new_node(node, timeout=0.5)
        raise AssertionError("locked a node someone else holds")
    except LockError:
        pass
    assert other.get_node(node.id).state == NodeState.INIT
    other.unlock_node(theirs)
    api.lock_new_node(node, timeout=5)
    assert other.get_node(node.id).state == NodeState.BUILDING
    assert node.lock is not None and node.lock.is_acquired
    api.unlock_node(node)


def test_finish_request_writes_and_releases_every_lock(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    request = new_request(api)
    request.set_state("pending")
    assert api.lock_and_store_request(request)
    nodes = []
    for _ in range(2):
        node = new_node(api)
        node.set_state(NodeState.READY)
        api.lock_new_node(node)
        nodes.append(node)
    request.nodes = [n.id for n in nodes]
    request.set_state("fulfilled")
    assert api.finish_request(request, nodes) is True
    stored = other.get_request(request.id)
    assert stored.state == "fulfilled" and stored.nodes == request.nodes
    assert children(api, request_lock_path(request.id)) == []
    for node in nodes:
        assert node.lock is None
        assert children(api, node_lock_path(node.id)) == []
    assert request.lock is None


def test_finish_request_changes_nothing_on_conflict(zk_factory):
    api, other = zk_factory(), zk_factory(cache=False)
    request = new_request(api)
    request.set_state("pending")
    assert api.lock_and_store_request(request)
    node = new_node(api)
    api.lock_new_node(node)
    zuul = other.get_request(request.id)
    zuul.relative_priority = 3
    other.store_request(zuul)
    request.set_state("fulfilled")
    assert api.finish_request(request, [node]) is False
    # Nothing applied: both locks still held, request still pending.
    assert other.get_request(request.id).state == "pending"
    assert len(children(api, request_lock_path(request.id))) == 1
    assert len(children(api, node_lock_path(node.id))) == 1
    assert request.lock.is_acquired and node.lock.is_acquired
    # The caller's fallback: merge-write, then unlock one by one.
    api.store_request(request)
    fresh = other.get_request(request.id)
    assert fresh.state == "fulfilled" and fresh.relative_priority == 3
    api.unlock_node(node)
    api.unlock_request(request)


def test_store_node_async_lands_and_merges_a_conflict(zk_factory, wait_for):
    api, other = zk_factory(), zk_factory(cache=False)
    node = new_node(api, NodeState.BUILDING)
    node.external_id = "i-1"
    write = api.store_node_async(node)
    wait_for(write.done, message="async write reply")
    write.result()
    assert other.get_node(node.id).external_id == "i-1"
    version = node.stat.version
    # Someone else writes meanwhile (e.g. a hold comment): ours merges.
    theirs = other.get_node(node.id)
    theirs.comment = "held for debugging"
    other.store_node(theirs)
    node.set_state(NodeState.READY)
    write = api.store_node_async(node)
    wait_for(write.done, message="async write reply")
    write.result()
    fresh = other.get_node(node.id)
    assert fresh.state == NodeState.READY
    assert fresh.comment == "held for debugging"
    assert node.stat.version > version + 1


def test_store_node_async_reports_a_vanished_node(zk_factory, wait_for):
    api = zk_factory()
    node = new_node(api, NodeState.BUILDING)
    api.kazoo.delete(node_path(node.id))
    write = api.store_node_async(node)
    wait_for(write.done, message="async write reply")
    try:
        write.result()
        raise AssertionError("wrote a vanished node")
    except Exception as exc:
        assert "does not exist" in str(exc)
    assert api.kazoo.exists(request_path("nothing")) is None


def test_own_contender_found_after_a_transaction_lock(zk_factory):
    """What settles a lock transaction whose reply was lost: our contender
    (named by the lock's unique prefix) is there exactly when it landed."""
    from nodepool.zk import locking
    api, other = zk_factory(), zk_factory(cache=False)
    node = new_node(api)
    node.set_state(NodeState.BUILDING)
    api.lock_new_node(node)
    name = locking.find_own_contender(node.lock, timeout=5)
    assert name is not None and name == node.lock.node
    # Another contender's lock object does not find ours...
    theirs = Lock(other.kazoo, node_lock_path(node.id))
    assert locking.find_own_contender(theirs, timeout=5) is None
    # ...and a lock directory that does not exist holds nobody.
    absent = Lock(api.kazoo, node_lock_path("9999999999"))
    assert locking.find_own_contender(absent, timeout=5) is None
    mine = node.lock
    api.unlock_node(node)
    assert locking.find_own_contender(mine, timeout=5) is None


def test_lost_replies_of_landed_locks_keep_the_locks(zk, zk_factory,
                                                     wait_for):
    """30 transactions that lock a request and mark it ``pending`` land,
    but their replies are lost and the connection drops (the session
    survives): each lock is kept and each request is ours at the version
    written -- never a ``pending`` request left unlocked, which no
    launcher would serve until the cleanup worker reset it -- and the
    next conditional write (the fulfilment) applies without a conflict."""
    gate = TcpGate(zk.server.port).start()
    try:
        api = zk_factory(hosts=f"{gate.hosts}{zk.chroot}", timeout=10.0)
        other = zk_factory(cache=False)
        requests = [new_request(api) for _ in range(30)]
        session = api.client.session_id
        for request in requests:
            request.set_state("pending")
        # (The lock root exists: the first transaction needs no retry.)
        other.kazoo.ensure_path(REQUEST_LOCKS)
        gate.mute()
        with ThreadPoolExecutor(len(requests)) as pool:
            taken = [pool.submit(api.lock_and_store_request, r)
                     for r in requests]
            wait_for(lambda: all(
                children(other, request_lock_path(r.id)) for r in requests),
                message="every transaction landed")
            gate.close()
            wait_for(lambda: api.suspended, message="cut off")
            gate.unmute()
            gate.open()
            assert [f.result(timeout=30) for f in taken] == [True] * 30
        assert api.client.session_id == session
        for request in requests:
            data, stat = other.kazoo.get(request_path(request.id))
            assert json.loads(data)["state"] == "pending"
            assert stat.version == request.stat.version
            assert request.lock.is_acquired
            assert children(other, request_lock_path(request.id)) == [
                request.lock.node]
            request.set_state("fulfilled")
            assert api.finish_request(request) is True
            assert children(other, request_lock_path(request.id)) == []
            assert other.get_request(request.id).state == "fulfilled"
    finally:
        gate.stop()
