"""Usage records between launcher processes (``usagebook.py``).

Three ``nodepool-launcher`` processes (``tools.zkops``, so each counts its
reads by subtree and thread and names its session) serve one provider of
the ``fake`` driver whose pool allows ``MAX`` servers; the test plays Zuul
with raw kazoo and keeps every node it gets:

* ``MAX`` requests fill the pool; then 24 more wait, whichever launcher
  they go to: none is fulfilled while the nodes are held, so each
  launcher counts the others' nodes;
* each launcher's record lists exactly the nodes it created, and the
  launchers' quota (their pool workers' I/O threads) did not read the
  others' nodes: fewer reads than ``MAX`` (without the records each
  launcher reads each peer node at least once: ``2 * MAX``);
* ``kill -9`` of the launcher holding the most nodes: its record goes with
  its session, the survivors read its nodes instead -- and still fulfil
  nothing while they are held;
* once Zuul returns every node the survivors delete them all (the killed
  launcher's too) and serve every waiting request.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.functional.launcher.helpers import wait_for
from tests.functional.launcher.test_processes import (NodeWatch, children,
                                                      wait_pools)
from tests.functional.launcher.test_sharding import (CountingLauncher,
                                                     write_config)

pytestmark = pytest.mark.functional

NODES = "/nodepool/nodes"
USAGE = "/nodepool/launcher-usage"
WAITS = "/nodepool/request-waits"
MAX = 12
MORE = 24


class Launcher(CountingLauncher):
    def node_reads(self, after: float) -> dict[str, int]:
        """Reads of each node znode, by node id."""
        return self.dump(after)["node_reads"]

    def session(self) -> int:
        return self.dump(0.0)["sessions"][0]


def peer_reads(procs, owner_of, after: float) -> int:
    """Reads of nodes by launchers other than the one that created them
    (``owner_of``: node id -> the creating process)."""
    total = 0
    for proc in procs:
        for node_id, count in proc.node_reads(after).items():
            if owner_of.get(node_id, proc) is not proc:
                total += count
    return total


def records(client) -> dict[str, tuple[set[str], int]]:
    """Member -> (the node ids its record lists, its session)."""
    out = {}
    for name in children(client, USAGE):
        data, stat = client.get(f"{USAGE}/{name}")
        out[name] = (set(json.loads(data)["nodes"]), stat.ephemeralOwner)
    return out


@pytest.fixture
def launchers(tmp_path):
    started: list[Launcher] = []

    def start(config_path: str) -> Launcher:
        started.append(Launcher(config_path, tmp_path, len(started)))
        return started[-1]

    yield start
    for launcher in started:
        launcher.stop()


def fulfil(zuul, rids, timeout=60.0) -> dict[str, list[str]]:
    """Wait for each request, take its nodes and set them in use."""
    held = {}
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=timeout)
        assert req["state"] == "fulfilled", (rid, req)
        held[rid] = zuul.accept(rid)
        zuul.set_in_use(held[rid])
    return held


def states(zuul, rids) -> dict[str, str]:
    return {rid: (zuul.get_request(rid) or {}).get("state") for rid in rids}


def test_quota_holds_across_launchers_through_their_records(env, launchers):
    config = write_config(env, "shared", max_servers=MAX,
                          session_timeout=10.0, **{"create-latency": 0.2})
    client, zuul = env.client, env.zuul
    watch = NodeWatch(client)
    procs = [launchers(config) for _ in range(3)]
    wait_pools(client, 3, procs)
    wait_for(lambda: len(children(client, USAGE)) == 3, timeout=30,
             what="three usage records")
    started = time.time()

    held = fulfil(zuul, [zuul.submit(["small"]) for _ in range(MAX)])
    more = [zuul.submit(["small"]) for _ in range(MORE)]
    # Full: every other request waits (each has a wait record), whichever
    # launcher it goes to.
    wait_for(lambda: set(more) <= {name.rpartition(":")[0]
                                   for name in children(client, WAITS)},
             timeout=30, what="a wait record for every waiting request")
    assert set(states(zuul, more).values()) <= {"requested", "pending"}
    assert len(children(client, NODES)) == MAX

    # Every launcher's record lists the nodes it created, and only them.
    def listed():
        got = records(client)
        return got if sum(len(ids) for ids, _ in got.values()) == MAX \
            else None
    by_member = wait_for(listed, timeout=10, what="all nodes in records")
    by_session = {p.session(): p for p in procs}
    owner_of = {}
    for ids, session in by_member.values():
        assert len({watch.launcher[i] for i in ids}) <= 1, ids
        owner_of.update((i, by_session[session]) for i in ids)
    assert len([1 for ids, _ in by_member.values() if ids]) >= 2, by_member
    # The launchers counted the others' nodes from their records: without
    # them each reads each peer node at least once (2 * MAX reads).
    reads = peer_reads(procs, owner_of, started)
    assert reads < MAX / 2, reads

    # kill -9 the launcher with the most nodes: its record goes with its
    # session; the survivors read its nodes, and still launch nothing.
    member = max(by_member, key=lambda m: len(by_member[m][0]))
    theirs, session = by_member[member]
    victim = by_session[session]
    survivors = [p for p in procs if p is not victim]
    victim.kill()
    wait_for(lambda: member not in children(client, USAGE), timeout=30,
             what="the killed launcher's record gone")

    def read_by_all(after=time.time()):
        return all(set(theirs) <= set(p.node_reads(after))
                   for p in survivors)
    wait_for(read_by_all, timeout=30,
             what="the survivors reading the killed launcher's nodes")
    assert set(states(zuul, more).values()) <= {"requested", "pending"}
    assert len(children(client, NODES)) == MAX

    # Zuul returns every node; the survivors delete them all and serve
    # the waiting requests (whose killed taker's are reset first).
    for node_ids in held.values():
        zuul.release(node_ids)
    done: set[str] = set()

    def use_fulfilled():
        for rid, state in states(zuul, set(more) - done).items():
            assert state != "failed", rid
            if state == "fulfilled":
                zuul.release(zuul.accept(rid))
                done.add(rid)
        return done == set(more)
    wait_for(use_fulfilled, timeout=120, what="every request served")
    wait_for(lambda: not children(client, NODES), timeout=60,
             what="every node deleted")
