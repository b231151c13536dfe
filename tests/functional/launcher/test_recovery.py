"""Recovery duties of the cleanup and deleted-node workers (behaviours 19,
31, 32), against the real ZooKeeper.

The broken states a crashed launcher or requester leaves behind are written
with raw kazoo, exactly as they would be found on the wire.  The periodic
workers are driven by calling their ``run_once()`` directly (the launcher's
own cleanup thread waits 60 s), so every "not yet" assertion follows a
complete pass rather than a sleep.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.functional.launcher.helpers import fake_provider, raw_node, wait_for

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"
REQUEST_LOCKS = "/nodepool/requests-lock"
HOUR = 3600.0


def history_of(client, request_id):
    """Every version of the request's data, as (state, nodes) tuples."""
    seen = []

    def record(data, stat, event=None):
        if data:
            obj = json.loads(data)
            seen.append((obj.get("state"), list(obj.get("nodes") or [])))
    client.DataWatch(f"{REQUESTS}/{request_id}", record)
    return seen


def request_lock(client, request_id):
    lock = client.Lock(f"{REQUEST_LOCKS}/{request_id}", "dead-handler")
    assert lock.acquire(timeout=5)
    return lock


# -- behaviour 19: lost requests ---------------------------------------------

def test_lost_request_reset_then_fulfilled(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    rid = zuul.submit(["small"], reuse=False,
                      extra={"state": "pending"})
    init = raw_node(client, "init", rid)
    spare = raw_node(client, "ready", rid, external_id="gone-instance")
    zuul.set_request(rid, nodes=[init])
    history = history_of(client, rid)
    # A pending request whose handler still holds the lock is not lost.
    owned = zuul.submit(["small"], priority="300",
                        extra={"state": "pending"})
    lock = request_lock(client, owned)

    launcher.cleanup_worker.run_once()

    req = zuul.wait_state(rid, {"fulfilled"})
    assert ("requested", []) in history
    assert history.index(("requested", [])) > history.index(
        ("pending", [init]))
    (node_id,) = req["nodes"]
    assert node_id not in (init, spare)
    zuul.wait_node_gone(init)                 # its init node was deleted
    kept = zuul.get_node(spare)               # other nodes deallocated
    assert kept["state"] == "ready" and kept["allocated_to"] is None
    assert zuul.get_request(owned)["state"] == "pending"

    lock.release()                            # now its owner is gone too
    launcher.cleanup_worker.run_once()
    zuul.wait_state(owned, {"fulfilled"})


def test_lost_request_building_node_deleted_after_reset(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    rid = zuul.submit(["small"], extra={"state": "pending"})
    building = raw_node(client, "building", rid, external_id="fake-999999")
    launcher.cleanup_worker.run_once()
    zuul.wait_state(rid, {"fulfilled"})
    zuul.wait_node_gone(building)


# -- behaviour 32: request-lock directories, empty and unlocked nodes --------

def test_request_lock_dirs_removed_after_8_hours_not_before(env):
    """A gone request's lock directory holding a lock goes after eight
    hours, not before; an empty one goes on the next pass."""
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    # A gone request's directory with a lock contender in it (8 hours),
    # and one left empty (removed on the next pass).
    vanished, empty = "200-0000000077", "200-0000000078"
    client.ensure_path(f"{REQUEST_LOCKS}/{empty}")
    lock = client.Lock(f"{REQUEST_LOCKS}/{vanished}", "someone")
    assert lock.acquire(timeout=5)
    # An existing request whose lock directory the pool worker created.
    alive = zuul.submit(["no-such-label"])
    zuul.wait_state(alive, {"failed"})
    assert client.exists(f"{REQUEST_LOCKS}/{alive}")

    cleanup = launcher.cleanup_worker
    cleanup.clock = lambda: time.time() + 8 * HOUR - 60
    cleanup.run_once()
    assert client.exists(f"{REQUEST_LOCKS}/{vanished}")
    assert client.exists(f"{REQUEST_LOCKS}/{empty}") is None
    cleanup.clock = lambda: time.time() + 8 * HOUR + 60
    cleanup.run_once()
    assert client.exists(f"{REQUEST_LOCKS}/{vanished}") is None
    assert client.exists(f"{REQUEST_LOCKS}/{alive}")


def test_empty_node_znodes_removed_unless_locked(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    client = env.client
    client.ensure_path(NODES)
    empty = client.create(f"{NODES}/", b"", sequence=True)
    locked = client.create(f"{NODES}/", b"", sequence=True)
    lock = client.Lock(f"{locked}/lock", "someone")
    assert lock.acquire(timeout=5)
    real = raw_node(client, "hold")

    launcher.cleanup_worker.run_once()
    assert client.exists(empty) is None
    assert client.exists(locked)
    assert env.zuul.get_node(real)["state"] == "hold"
    lock.release()


def test_unlocked_building_node_removed_locked_one_kept(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    orphan = raw_node(client, "building")
    busy = raw_node(client, "building")
    zuul.lock_node(busy)                      # its launcher is alive
    zuul.wait_node_gone(orphan)
    launcher.deleted_worker.run_once()
    assert zuul.get_node(busy)["state"] == "building"
    zuul.unlock_node(busy)
    zuul.wait_node_gone(busy)


# -- behaviour 31: READY nodes of vanished requests ------------------------

def test_ready_node_of_vanished_request_deallocated_once_unlocked(env):
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    locked = raw_node(client, "ready", "200-0000009999")
    zuul.lock_node(locked)                    # the requester still holds it
    existing = zuul.submit(["no-such-label"])
    zuul.wait_state(existing, {"failed"})
    kept = raw_node(client, "ready", existing)
    free = raw_node(client, "ready", "200-0000009998")

    wait_for(lambda: zuul.get_node(free)["allocated_to"] is None,
             what="unlocked orphan deallocated")
    launcher.deleted_worker.run_once()
    assert zuul.get_node(locked)["allocated_to"] == "200-0000009999"
    assert zuul.get_node(kept)["allocated_to"] == existing

    zuul.unlock_node(locked)
    wait_for(lambda: zuul.get_node(locked)["allocated_to"] is None,
             what="deallocated after unlock")
    node = zuul.get_node(locked)
    assert node["state"] == "ready"
    launcher.deleted_worker.run_once()
    assert zuul.get_node(kept)["allocated_to"] == existing


def test_closed_connection_ends_a_node_pass_with_one_line(env, caplog):
    """At shutdown the connection closes under a running pass: the rest of
    the pass would fail node by node; it stops with one warning."""
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    worker = launcher.deleted_worker
    worker.stop()                 # passes are driven by hand from here
    worker.join()
    ids = [raw_node(env.client, "ready", f"200-00000099{i:02d}")
           for i in range(6)]
    wait_for(lambda: all(launcher.zk.get_node(i, cached=True)
                         for i in ids), what="nodes cached")
    # Nodes no usage record claims are left alone while young (they may
    # be a peer's, usagebook.py): the pass below must find them old.
    wait_for(lambda: all(launcher.usage.claims().reads(i) for i in ids),
             timeout=10, what="nodes past the claim grace")
    worker._stop.clear()
    launcher.zk.client.kazoo.stop()
    caplog.clear()
    worker.run_once()
    records = [r for r in caplog.records
               if r.name == "nodepool.DeletedNodeWorker"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelname == "WARNING"
    assert "ZooKeeper unavailable" in records[0].getMessage()


def test_lost_init_nodes_removed_by_cleanup(env):
    """An ``init`` node is locked by its creator right after it is written;
    one left unlocked (creator died or failed to lock it) whose request is
    no longer pending would otherwise stay forever."""
    env.write_config([fake_provider()])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    old = time.time() - 2 * HOUR
    lost = raw_node(client, "init", "200-0000009999", state_time=old)
    fresh = raw_node(client, "init", "200-0000009998")
    locked = raw_node(client, "init", "200-0000009997", state_time=old)
    zuul.lock_node(locked)

    launcher.cleanup_worker.run_once()
    zuul.wait_node_gone(lost)
    assert zuul.get_node(fresh)["state"] == "init"   # may be mid-launch
    assert zuul.get_node(locked)["state"] == "init"  # its creator lives
    zuul.unlock_node(locked)
