"""The persistent-watch caches (``nodepool.zk.watchcache``) against the real
server: they follow the subtree without listing directories, take our own
writes without reading them back, never miss a foreign write that races
ours, and reconcile everything after a cut connection or a lost session."""

from __future__ import annotations

import json
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError

from nodepool.zk import Node, NodeRequest, NodeState
from nodepool.zk.cache import TreeCaches
from nodepool.zk.leantree import LeanTreeCache
from nodepool.zk.watchcache import PersistentTreeCache
from tests.functional.zk.counting import count_requests
from tools.zookeeper import TcpGate

NODES = "/nodepool/nodes"


def make_node(api, **fields) -> Node:
    node = Node(state=NodeState.READY, provider="p", pool="main",
                type=["small"], **fields)
    api.store_node(node)
    return node


def cache_matches_server(api, reader: KazooClient) -> bool:
    """Every node's cached data and version equal the server's, and the
    cache knows exactly the server's nodes and lock contenders."""
    names = set(reader.get_children(NODES))
    if set(api.caches.children(NODES)) != names:
        return False
    for name in names:
        path = f"{NODES}/{name}"
        data, stat = reader.get(path)
        cached = api.caches.get(path)
        if cached is None or (cached.data, cached.stat.version) != (
                data, stat.version):
            return False
        lock = f"{path}/lock"
        holders = set(reader.get_children(lock)) if reader.exists(lock) \
            else set()
        if set(api.caches.children(lock)) != holders:
            return False
    return True


@pytest.fixture
def reader(zk):
    client = zk.kazoo()
    yield client
    client.stop()
    client.close()


def test_the_busy_roots_use_one_persistent_watch(zkapi):
    trees = zkapi.caches._trees
    assert isinstance(trees[NODES], PersistentTreeCache)
    assert isinstance(trees["/nodepool/requests"], PersistentTreeCache)


def test_one_shot_watches_when_asked(zk_factory):
    api = zk_factory(persistent=False)
    assert isinstance(api.caches._trees[NODES], LeanTreeCache)


def test_follows_the_subtree_without_listing_it(zkapi, zk_factory,
                                                wait_for, zk):
    writer = zk_factory(cache=False)
    other = zk.kazoo()
    sent = count_requests(zkapi)
    try:
        node = make_node(writer)
        wait_for(lambda: zkapi.get_node(node.id, cached=True) is not None,
                 message="node cached")
        node.set_state(NodeState.IN_USE)
        writer.store_node(node)
        wait_for(lambda: zkapi.get_node(node.id, cached=True).state
                 == NodeState.IN_USE, message="change seen")
        for _ in range(3):
            lock = other.Lock(f"{NODES}/{node.id}/lock", "zuul")
            assert lock.acquire(timeout=5)
            wait_for(lambda: zkapi.is_locked(node), message="lock seen")
            lock.release()
            wait_for(lambda: not zkapi.is_locked(node),
                     message="unlock seen")
        writer.delete_node(node)
        # (Asked without reading: a reader polling the data between the
        # "deleted" write and the removal would read that version.)
        wait_for(lambda: not zkapi.caches.exists(f"{NODES}/{node.id}"),
                 message="removal seen")
        assert not zkapi.caches.children(NODES)
    finally:
        other.stop()
        other.close()
    # Creations, lock cycles and the removal came as notifications: no
    # directory was listed, and the node's data was read once per version
    # someone asked for (created, set in-use), not for the "deleted"
    # written before the removal, which nobody read (the cache is lazy).
    assert not [k for k in sent if k[0].startswith("GetChildren")], sent
    assert sent[("GetData", f"{NODES}/{node.id}")] == 2, sent


def test_own_write_is_not_read_back(zkapi, wait_for):
    node = make_node(zkapi)
    wait_for(lambda: zkapi.get_node(node.id, cached=True) is not None,
             message="node cached")
    sent = count_requests(zkapi)
    for state in (NodeState.IN_USE, NodeState.USED):
        node.set_state(state)
        zkapi.store_node(node)
        wait_for(lambda: zkapi.get_node(node.id, cached=True).state == state,
                 message=f"own write {state} cached")
        cached = zkapi.caches.get(f"{NODES}/{node.id}")
        assert cached.stat == node.stat
        assert json.loads(cached.data)["state"] == state
    assert sent[("GetData", f"{NODES}/{node.id}")] == 0, sent


def test_proven_version_only_when_nothing_notified_is_missing(
        zkapi, reader, wait_for):
    """``proven_version`` (what locking trusts instead of a re-read): the
    mzxid while the entry holds every notified change; None while a
    foreign change is unread or an own write is settling."""
    node = make_node(zkapi)
    path = f"{NODES}/{node.id}"
    caches = zkapi.caches
    wait_for(lambda: zkapi.get_node(node.id, cached=True) is not None,
             message="node cached")
    assert caches.proven_version(path) == node.stat.mzxid
    data, stat = reader.get(path)
    reader.set(path, data, version=stat.version)
    wait_for(lambda: caches.proven_version(path) is None,
             message="the foreign change marked unread")
    fresh = zkapi.get_node(node.id, cached=True)     # reads it
    assert caches.proven_version(path) == fresh.stat.mzxid > stat.mzxid
    token = caches.expect_write(path, data, True)
    written = zkapi.kazoo.set(path, data, version=fresh.stat.version)
    # Notified, not settled: the entry still shows the old data, unmarked.
    wait_for(lambda: token.changes == 1, message="the own write notified")
    assert caches.get(path).stat.mzxid == fresh.stat.mzxid
    assert caches.proven_version(path) is None
    caches.settle_write(token, written)
    assert caches.proven_version(path) == written.mzxid


def test_foreign_write_right_after_ours_is_seen(zkapi, reader, wait_for):
    node = make_node(zkapi)
    path = f"{NODES}/{node.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    for i in range(30):
        node.set_state(NodeState.IN_USE)
        zkapi.store_node(node)
        # Zuul's write lands right behind ours.
        reader.set(path, json.dumps({"state": "used", "round": i}).encode())
        wait_for(lambda: cache_matches_server(zkapi, reader),
                 message=f"foreign write of round {i} cached")
        node = zkapi.get_node(node.id)


def test_settle_after_a_foreign_write_reads_again(zkapi, reader, wait_for):
    """The outcome of our write may reach the cache after a foreign write's
    notification (the settle comes from another thread): two changes were
    seen, so the cache must read the znode, not keep our data."""
    node = make_node(zkapi)
    path = f"{NODES}/{node.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    for conditional in (True, False):
        ours = json.dumps({"state": "in-use"}).encode()
        token = zkapi.caches.expect_write(path, ours, conditional)
        version = reader.exists(path).version if conditional else -1
        stat = zkapi.kazoo.set(path, ours, version=version)
        reader.set(path, json.dumps({"state": "used"}).encode())
        # Our later read is answered after the foreign notification.
        zkapi.kazoo.get(path)
        zkapi.caches.settle_write(token, stat)
        wait_for(lambda: cache_matches_server(zkapi, reader),
                 message=f"foreign write cached (conditional={conditional})")
        assert json.loads(zkapi.caches.get(path).data)["state"] == "used"


def test_unconditional_own_write_is_read_back(zkapi, reader, wait_for):
    """Without a version an own write cannot prove it was the only one:
    the cache reads it back (when next asked for: it is lazy)."""
    node = make_node(zkapi)
    path = f"{NODES}/{node.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    sent = count_requests(zkapi)
    ours = json.dumps({"state": "in-use"}).encode()
    token = zkapi.caches.expect_write(path, ours, conditional=False)
    stat = zkapi.kazoo.set(path, ours)
    zkapi.caches.settle_write(token, stat)
    wait_for(lambda: cache_matches_server(zkapi, reader), message="cached")
    assert sent[("GetData", path)] == 1, sent


def test_lazy_cache_reads_what_is_asked_for_once(zkapi, reader, wait_for):
    """Foreign writes between two reads of the cache cost one read, and a
    znode nobody asks for costs none; what is asked for is current."""
    watched, ignored = make_node(zkapi), make_node(zkapi)
    path = f"{NODES}/{watched.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    sent = count_requests(zkapi)
    for i in range(5):
        for node in (watched, ignored):
            reader.set(f"{NODES}/{node.id}",
                       json.dumps({"state": "used", "round": i}).encode())
    # A round trip on the cache's connection: the server sends it every
    # notification of the writes above before the reply.
    final = zkapi.kazoo.exists(path).version
    assert zkapi.caches.get(path).stat.version == final
    assert json.loads(zkapi.caches.get(path).data)["round"] == 4
    assert sent[("GetData", path)] == 1, sent
    assert sent[("GetData", f"{NODES}/{ignored.id}")] == 0, sent


def test_lost_race_reads_the_winner(zkapi, reader, wait_for):
    """Our conditional write fails because someone wrote first: the cache
    must show the other write, then our merged retry."""
    node = make_node(zkapi)
    path = f"{NODES}/{node.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    stale_version = node.stat.version
    reader.set(path, json.dumps({"state": "ready", "comment": "x"}).encode())
    with pytest.raises(BadVersionError):
        zkapi.kazoo.set(path, b"{}", version=stale_version)
    wait_for(lambda: cache_matches_server(zkapi, reader),
             message="winner cached")
    assert json.loads(zkapi.caches.get(path).data)["comment"] == "x"
    node.set_state(NodeState.USED)
    zkapi.store_node(node)      # conflicts, merges, writes again
    wait_for(lambda: cache_matches_server(zkapi, reader),
             message="merged write cached")
    cached = json.loads(zkapi.caches.get(path).data)
    assert (cached["state"], cached["comment"]) == ("used", "x")


def test_concurrent_own_and_foreign_writes_converge(zkapi, reader,
                                                    wait_for):
    nodes = [make_node(zkapi) for _ in range(8)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def own(subset):
        try:
            for i in range(40):
                for node in subset:
                    node.comment = f"own {i}"
                    zkapi.store_node(node)
        except BaseException as exc:      # reported below
            errors.append(exc)

    def foreign():
        i = 0
        while not stop.is_set():
            node = nodes[i % len(nodes)]
            path = f"{NODES}/{node.id}"
            data = json.loads(reader.get(path)[0])
            data["hold_job"] = f"foreign {i}"
            try:
                reader.set(path, json.dumps(data).encode(),
                           version=reader.exists(path).version)
            except BadVersionError:
                pass
            i += 1

    threads = [threading.Thread(target=own, args=(nodes[k::2],))
               for k in range(2)]
    intruder = threading.Thread(target=foreign)
    for t in threads + [intruder]:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    intruder.join(10)
    assert not errors, errors
    wait_for(lambda: cache_matches_server(zkapi, reader),
             message="cache equal to the server")


def test_cut_connection_is_reconciled(zk, zk_factory, reader, wait_for):
    gate = TcpGate(zk.server.port).start()
    try:
        api = zk_factory(hosts=f"{gate.hosts}{zk.chroot}")
        kept, changed, removed, locked = (make_node(api) for _ in range(4))
        request = NodeRequest(node_types=["small"])
        api.submit_request(request)
        wait_for(lambda: cache_matches_server(api, reader)
                 and api.get_request(request.id, cached=True) is not None,
                 message="synced")
        session = api.client.session_id
        gate.close()
        wait_for(lambda: api.suspended, message="suspended")
        # Meanwhile (no notification can reach the cache):
        added = make_node(zk_factory(cache=False))
        path = f"{NODES}/{changed.id}"
        reader.set(path, json.dumps({"state": "used"}).encode())
        reader.delete(f"{NODES}/{removed.id}", recursive=True)
        lock = reader.Lock(f"{NODES}/{locked.id}/lock", "zuul")
        assert lock.acquire(timeout=5)
        rpath = f"/nodepool/requests/{request.id}"
        data = json.loads(reader.get(rpath)[0])
        data["state"] = "pending"
        reader.set(rpath, json.dumps(data).encode())
        gate.open()
        wait_for(lambda: not api.suspended, timeout=20, message="reconnected")
        assert api.client.session_id == session
        wait_for(lambda: cache_matches_server(api, reader),
                 message="reconciled")
        assert api.is_locked(locked)
        assert api.get_node(added.id, cached=True) is not None
        assert api.get_node(removed.id, cached=True) is None
        assert api.get_node(changed.id, cached=True).state == "used"
        assert api.get_node(kept.id, cached=True) is not None
        wait_for(lambda: api.get_request(request.id, cached=True).state
                 == "pending", message="request change reconciled")
        # And the watch is in place again.
        lock.release()
        wait_for(lambda: not api.is_locked(locked), message="watch re-added")
    finally:
        gate.stop()


def test_resync_of_a_large_tree_after_reconnection(zk, zk_factory, reader,
                                                  wait_for):
    """The re-read after a reconnection starts on kazoo's connection thread
    and sends thousands of reads: they must not wedge that thread (kazoo
    wakes it with a byte per request on a socket pair only it drains)."""
    gate = TcpGate(zk.server.port).start()
    try:
        api = zk_factory(hosts=f"{gate.hosts}{zk.chroot}")
        body = json.dumps({"state": "ready", "provider": "p"}).encode()
        pending = [reader.create_async(f"{NODES}/", body, sequence=True)
                   for _ in range(1500)]
        for result in pending:
            result.get(timeout=30)
        wait_for(lambda: len(api.caches.children(NODES)) == 1500,
                 timeout=30, message="all cached")
        gate.close()
        wait_for(lambda: api.suspended, message="suspended")
        reader.create(f"{NODES}/", body, sequence=True)
        gate.open()
        wait_for(lambda: not api.suspended, timeout=20, message="reconnected")
        wait_for(lambda: len(api.caches.children(NODES)) == 1501,
                 timeout=60, message="resynced")
        # The connection still serves requests.
        assert api.kazoo.get(NODES)[1] is not None
        wait_for(lambda: cache_matches_server(api, reader), timeout=60,
                 message="reconciled")
    finally:
        gate.stop()


def test_lost_session_is_reconciled(zk, zk_factory, reader, wait_for):
    gate = TcpGate(zk.server.port).start()
    try:
        api = zk_factory(hosts=f"{gate.hosts}{zk.chroot}", timeout=2.0)
        gone, held = make_node(api), make_node(api)
        api.lock_node(held)          # an ephemeral contender of the session
        lock_dir = f"{NODES}/{held.id}/lock"
        wait_for(lambda: cache_matches_server(api, reader), message="synced")
        old = api.client.session_id
        gate.close()
        wait_for(lambda: api.suspended, message="suspended")
        # The server expires the partitioned session: its contender goes.
        wait_for(lambda: not reader.get_children(lock_dir), timeout=20,
                 message="session expired on the server")
        reader.delete(f"{NODES}/{gone.id}", recursive=True)
        added = make_node(zk_factory(cache=False))
        gate.open()
        wait_for(lambda: api.client.session_id not in (None, old)
                 and not api.suspended, timeout=30, message="new session")
        wait_for(lambda: cache_matches_server(api, reader),
                 message="reconciled")
        assert api.get_node(gone.id, cached=True) is None
        assert api.get_node(added.id, cached=True) is not None
        assert not api.is_locked(held)
    finally:
        gate.stop()


def test_stopped_cache_lets_go_of_notifications(zk, zk_factory, wait_for):
    client_api = zk_factory(cache=False)
    caches = TreeCaches(client_api.kazoo, [NODES], {NODES: (1, 2)})
    caches.start()
    tree = caches._trees[NODES]
    node = make_node(client_api)
    path = f"{NODES}/{node.id}"
    wait_for(lambda: caches.get(path) is not None, message="cached")
    before = caches.get(path)
    caches.stop()
    node.set_state(NodeState.USED)
    client_api.store_node(node)
    # A notification is received before the reply of any later request:
    # once this read is answered the change has been notified, and the
    # stopped cache took nothing from it.
    client_api.kazoo.get(path)
    assert tree.get_data(path) == before
    assert not tree._tap._taps
    assert caches.expect_write(path, b"{}", True) is None


def test_a_version_read_before_will_do_when_asked(zkapi, reader, wait_for):
    """``current=False``: a reader that looks only at what never changes
    takes the version the cache has, and reads only what it never read."""
    known = make_node(zkapi)
    path = f"{NODES}/{known.id}"
    wait_for(lambda: zkapi.caches.get(path) is not None, message="cached")
    reader.set(path, json.dumps({"state": "used", "type": ["small"],
                                 "provider": "p"}).encode())
    fresh = create_raw(reader)
    zkapi.kazoo.exists(path)       # every notification above is in
    sent = count_requests(zkapi)
    nodes = {n.id: n for n in zkapi._iter_records(
        Node, NODES, True, current=False)}
    assert nodes[known.id].state == NodeState.READY     # the version read
    assert fresh in nodes
    assert sent[("GetData", path)] == 0, sent
    assert sent[("GetData", f"{NODES}/{fresh}")] == 1, sent


def create_raw(reader) -> str:
    """A node created with raw kazoo (not through the cache's client)."""
    body = json.dumps({"state": "ready", "type": ["small"],
                       "provider": "p"}).encode()
    return reader.create(f"{NODES}/", body, sequence=True).rsplit("/", 1)[1]


def test_births_count_node_znodes_that_appear_not_changes_or_locks(
        zkapi, reader, wait_for):
    """``node_births`` (what quota recounts on): 30 node znodes another
    client creates are 30 births; their data changes, lock contenders
    and deletions are none."""
    before = zkapi.node_births()
    assert before is not None
    paths = [reader.create(f"{NODES}/", json.dumps({
        "state": "building", "provider": "p", "pool": "main",
        "type": ["small"]}).encode(), sequence=True) for _ in range(30)]
    wait_for(lambda: zkapi.node_births() == before + 30,
             message="30 births")
    for path in paths:
        reader.set(path, json.dumps({"state": "ready"}).encode())
        reader.create(f"{path}/lock/", b"", sequence=True, makepath=True)
    for path in paths[:10]:
        reader.delete(path, recursive=True)
    wait_for(lambda: cache_matches_server(zkapi, reader),
             message="changes, locks and deletions cached")
    assert zkapi.node_births() == before + 30
