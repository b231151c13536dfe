"""Behaviours of upstream Nodepool 11.0.0 checked end to end (Parity #9).

Real ZooKeeper, the launcher in-process, the fake driver's cloud; the test
plays Zuul through ``ZuulSim``.  Each test waits on conditions, never on
time, except where the behaviour itself is about time (max-hold-age), and
there it measures instead of sleeping.
"""

from __future__ import annotations

import json
import threading

from nodepool.config import validate_config
from nodepool.driver import fake

from tests.functional.launcher.helpers import fake_provider, wait_for

NODES = "/nodepool/nodes"
LABEL = [{"name": "small", "cloud-image": "fake-image"}]


# -- a. max-hold-age alone -------------------------------------------------

def test_max_hold_age_alone_deletes_held_nodes_once_old_enough(env):
    """With no ``hold_expiration`` (absent, or 0 which means none) a held
    node is deleted once it has been in ``hold`` for ``max-hold-age``
    seconds, and stays held until then.

    The cloud refuses deletes at first, so each node stays in ``deleting``
    with the ``state_time`` the cleanup worker stamped when it gave up the
    hold: that time, not when the test happens to look, is checked.
    """
    max_hold_age = 2
    env.write_config([fake_provider()], **{"max-hold-age": max_hold_age})
    env.start_launcher(cleanup_interval=0.2)
    zuul = env.zuul
    cloud = fake.cloud_for("fake-provider")
    rid = zuul.submit(["small", "small"])
    zuul.wait_state(rid, {"fulfilled"})
    absent, zero = zuul.accept(rid)
    cloud.delete_errors = [RuntimeError("refused for the test")
                           for _ in range(1000)]
    zuul.set_node(absent, state="hold", hold_job="job", comment="debug")
    zuul.set_node(zero, state="hold", hold_job="job", hold_expiration=0)
    held_at = {n: zuul.get_node(n)["state_time"] for n in (absent, zero)}
    assert zuul.get_node(absent).get("hold_expiration") is None
    zuul.unlock_node(absent)
    zuul.unlock_node(zero)

    def deleting():
        nodes = {n: zuul.get_node(n) for n in (absent, zero)}
        if all(n["state"] == "deleting" for n in nodes.values()):
            return nodes
        return None
    marked = wait_for(deleting, timeout=max_hold_age + 10,
                      what="held nodes marked deleting")
    for node_id, node in marked.items():
        held_for = node["state_time"] - held_at[node_id]
        # Not before max-hold-age; within a few cleanup passes after it.
        assert max_hold_age <= held_for < max_hold_age + 3, \
            (node_id, held_for)
    cloud.delete_errors.clear()
    for node_id in (absent, zero):
        zuul.wait_node_gone(node_id, timeout=15)
    assert cloud.instances == {}


# -- b. max-concurrency -------------------------------------------------------

class Launching:
    """The provider's nodes in ``init``/``building``, seen via watches.

    Every node znode gets a data watch; the callbacks run one at a time on
    kazoo's event thread in ZooKeeper's order, so ``current`` is the set of
    nodes launching at some point of the history, and ``peak`` its largest
    size.  (A watch may skip a short-lived state; it never invents one.)
    """

    def __init__(self, client, provider: str):
        self.client = client
        self.provider = provider
        self.current: set[str] = set()
        self.peak = 0
        self.seen_launching: set[str] = set()
        self._watched: set[str] = set()
        self._lock = threading.Lock()
        client.ensure_path(NODES)
        client.ChildrenWatch(NODES, self._children)

    def _children(self, children):
        for child in children:
            if child not in self._watched:
                self._watched.add(child)
                self.client.DataWatch(f"{NODES}/{child}", self._data(child))

    def _data(self, node_id: str):
        def watch(data, stat):
            with self._lock:
                if data is None:
                    self.current.discard(node_id)
                    return False
                try:
                    node = json.loads(data)
                except ValueError:
                    return True
                if (node.get("provider") == self.provider
                        and node.get("state") in ("init", "building")):
                    self.current.add(node_id)
                    self.seen_launching.add(node_id)
                    self.peak = max(self.peak, len(self.current))
                else:
                    self.current.discard(node_id)
            return True
        return watch


def test_max_concurrency_bounds_launches_across_the_providers_pools(env):
    """``max-concurrency: 3``: with 30 requests arriving at once and
    creates taking 0.2 s, never more than 3 of the provider's nodes are
    launching at once -- over both of its pools -- and all 30 requests are
    fulfilled."""
    limit, burst = 3, 30
    # Each pool serves a label of its own, and the burst asks for both:
    # both pools launch at once, whatever the thread timing.
    pools = [{"name": name, "max-servers": burst, "labels": [
        {"name": f"small-{name}", "cloud-image": "fake-image"}]}
        for name in ("a", "b")]
    env.write_config([fake_provider(pools=pools, max_concurrency=limit,
                                    create_latency=0.2)])
    launching = Launching(env.client, "fake-provider")
    launcher = env.start_launcher()
    manager = launcher.provider_managers()["fake-provider"]
    active_peak = [0]
    done = threading.Event()

    def sample_active():
        # The launcher's own count, sampled as often as it can be read.
        while not done.is_set():
            active_peak[0] = max(active_peak[0], manager.active_launches)
            done.wait(0.002)
    sampler = threading.Thread(target=sample_active, daemon=True)
    sampler.start()
    try:
        ids = [env.zuul.submit([f"small-{'ab'[i % 2]}"])
               for i in range(burst)]
        for rid in ids:
            assert env.zuul.wait_state(rid, {"fulfilled", "failed"},
                                       timeout=25)["state"] == "fulfilled"
    finally:
        done.set()
        sampler.join()
    nodes = {env.zuul.get_request(r)["nodes"][0] for r in ids}
    assert len(nodes) == burst
    # The watches saw (nearly) every launch, and launches did overlap.
    assert len(launching.seen_launching) >= burst - 3
    assert (launching.peak, active_peak[0]) == (limit, limit)
    pools_used = {env.zuul.get_node(n)["pool"] for n in nodes}
    assert pools_used == {"a", "b"}     # both pools served the burst


# -- c. reuse -----------------------------------------------------------------

def test_request_without_reuse_never_gets_a_ready_node(env):
    """Upstream's ``reuse`` is a request field (min-ready sets it false):
    such a request gets a newly launched node even when a READY spare of
    its label waits, and the spare stays READY for the next request that
    allows reuse.  Once used, a cloud node is deleted, never READY again.
    """
    env.write_config([fake_provider()])
    env.start_launcher(cleanup_interval=0.3)
    zuul = env.zuul
    cloud = fake.cloud_for("fake-provider")
    first = zuul.submit(["small"])
    (spare,) = zuul.wait_state(first, {"fulfilled"})["nodes"]
    zuul.delete_request(first)       # Zuul gave up: the node is a spare
    wait_for(lambda: (zuul.get_node(spare) or {}).get("state") == "ready"
             and not zuul.get_node(spare)["allocated_to"],
             what="spare ready and unallocated")
    assert cloud.calls["create"] == 1

    no_reuse = zuul.submit(["small"], reuse=False)
    (fresh,) = zuul.wait_state(no_reuse, {"fulfilled"})["nodes"]
    assert fresh != spare
    assert cloud.calls["create"] == 2
    node = zuul.get_node(spare)
    assert node["state"] == "ready" and not node["allocated_to"]

    reuse = zuul.submit(["small"])
    assert zuul.wait_state(reuse, {"fulfilled"})["nodes"] == [spare]
    assert cloud.calls["create"] == 2

    used = zuul.accept(no_reuse) + zuul.accept(reuse)
    states = {n: [] for n in used}

    def record(node_id):
        def watch(data, stat):
            if data is not None:
                states[node_id].append(json.loads(data)["state"])
            return data is not None
        return watch
    for node_id in used:
        env.client.DataWatch(f"{NODES}/{node_id}", record(node_id))
    zuul.release(used)
    for node_id in used:
        zuul.wait_node_gone(node_id, timeout=15)
    for node_id, seen in states.items():
        # A watch may skip "used" (the deleter is quick): from the first
        # state after release on, the node is never READY again.
        after = [i for i, s in enumerate(seen) if s in ("used", "deleting")]
        assert after and "ready" not in seen[after[0]:], (node_id, seen)
    assert cloud.instances == {}


def test_reuse_is_not_a_label_option(tmp_path):
    """Upstream 11.0.0 has no ``reuse`` key on any label or static node:
    its schema rejects one, and so does ours."""
    path = tmp_path / "nodepool.yaml"
    path.write_text(
        "labels: [{name: small}]\nproviders:\n"
        "  - name: static-1\n    driver: static\n    pools:\n"
        "      - name: main\n        nodes:\n"
        "          - {name: host1, labels: [small], reuse: false}\n")
    assert validate_config(str(path)).errors == [
        "providers[0].pools[0].nodes[0].reuse: extra keys not allowed"]


# -- d. reload keeps unchanged providers --------------------------------------

def provider_threads(name: str) -> dict[str, threading.Thread]:
    prefixes = (f"{name}-", f"PoolWorker.{name}-")
    return {t.name: t for t in threading.enumerate()
            if t.name.startswith(prefixes)}


def test_reload_keeps_unchanged_provider_and_restarts_changed_one(env):
    keep = fake_provider("keep")
    edit = fake_provider("edit")
    labels = [{"name": "small"}]
    env.write_config([keep, edit], labels=labels)
    launcher = env.start_launcher()
    # Serve a request through each provider so their lazily started
    # threads (create pools, I/O executors) exist before the snapshot.
    for name in ("keep", "edit"):
        rid = env.zuul.submit(["small"], provider=name)
        env.zuul.wait_state(rid, {"fulfilled"})
        env.zuul.release(env.zuul.accept(rid))
    managers = launcher.provider_managers()
    workers = launcher.pool_workers()
    threads = {name: provider_threads(name) for name in ("keep", "edit")}
    idents = {name: {n: t.ident for n, t in ts.items()}
              for name, ts in threads.items()}
    for name in ("keep", "edit"):
        assert f"{name}-loop" in threads[name]
        assert f"PoolWorker.{name}-main" in threads[name]
    old_config = launcher.config

    # 1. A top-level change (a label's min-ready) restarts no provider.
    #    min-ready runs right after the reload in the same loop pass, so
    #    its request proves the reload (and reconciliation) was applied.
    env.write_config([keep, edit], labels=[{"name": "small", "min-ready": 1}])
    wait_for(lambda: any(n["state"] == "ready" and not n["allocated_to"]
                         for n in env.zuul.nodes().values()),
             timeout=15, what="min-ready spare after the reload")
    assert launcher.config is not old_config
    assert launcher.config.labels["small"].min_ready == 1
    assert launcher.provider_managers() == managers
    for name in ("keep", "edit"):
        assert launcher.provider_managers()[name] is managers[name]
        assert launcher.pool_workers()[f"{name}-main"] is \
            workers[f"{name}-main"]

    # 2. A change to provider "edit" only restarts "edit".
    edited = fake_provider("edit", pools=[{"name": "main", "max-servers": 7,
                                           "labels": LABEL}])
    env.write_config([keep, edited], labels=[{"name": "small",
                                              "min-ready": 1}])
    wait_for(lambda: launcher.provider_managers().get("edit") not in
             (None, managers["edit"]), timeout=15, what="edit restarted")
    now = launcher.provider_managers()
    assert now["keep"] is managers["keep"]
    assert launcher.pool_workers()["keep-main"] is workers["keep-main"]
    assert now["edit"].provider.pools["main"].max_servers == 7
    assert launcher.pool_workers()["edit-main"] is not workers["edit-main"]
    after = provider_threads("keep")
    for thread_name, thread in threads["keep"].items():
        assert after.get(thread_name) is thread, thread_name
        assert thread.is_alive() and thread.ident == \
            idents["keep"][thread_name], thread_name
    # Every thread of the old "edit" ends; its replacements are new ones.
    wait_for(lambda: not any(t.is_alive() for t in threads["edit"].values()),
             timeout=10, what="old edit threads ended")
    renewed = provider_threads("edit")
    assert "edit-loop" in renewed and "PoolWorker.edit-main" in renewed
    for thread_name, thread in renewed.items():
        assert thread is not threads["edit"].get(thread_name), thread_name
    # Both still serve requests.
    for name in ("keep", "edit"):
        rid = env.zuul.submit(["small"], provider=name, reuse=False)
        node = env.zuul.wait_state(rid, {"fulfilled"})["nodes"][0]
        assert env.zuul.get_node(node)["provider"] == name
