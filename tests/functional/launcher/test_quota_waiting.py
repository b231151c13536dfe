"""No head-of-line blocking at quota, no starvation (issue "pressure" item 4).

A pool whose oldest request waits at quota (here: ``max-cores``) keeps
serving requests of *other* labels whose nodes fit now; requests of the
*same* label wait behind it in order; once the waiting request has waited
``starve_after`` seconds the pool takes nothing new, so what frees up goes
to it.  Fake cloud, real ZooKeeper, a burst of 30.
"""

from __future__ import annotations

from tests.functional.launcher.helpers import fake_provider, wait_for


def _pool(max_cores: int) -> dict:
    return {"name": "main", "max-servers": 200, "max-cores": max_cores,
            "labels": [
                {"name": "filler", "cloud-image": "fake-image", "cores": 4},
                {"name": "big", "cloud-image": "fake-image", "cores": 8},
                {"name": "huge", "cloud-image": "fake-image", "cores": 32},
                {"name": "small", "cloud-image": "fake-image", "cores": 1}]}


def _start(env, max_cores: int):
    env.write_config([fake_provider(pools=[_pool(max_cores)])])
    launcher = env.start_launcher()
    [worker] = launcher.pool_workers().values()
    return launcher, worker


def _fulfil(zuul, labels_list) -> list[str]:
    """Submit requests and hold their nodes; returns the node ids."""
    rids = [zuul.submit(labels) for labels in labels_list]
    nodes = []
    for rid in rids:
        req = zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled", req
        nodes += zuul.accept(rid)
    return nodes


def _waiting_at_quota(worker, rid) -> bool:
    return any(h.request.id == rid and h.paused and h.waiting_since
               for h in list(worker.handlers))


def _seen_by_passes(launcher, worker, rids, passes: int = 3) -> None:
    """Wait until the worker's cache shows ``rids`` and it routed after."""
    wait_for(lambda: {r.id for r in launcher.zk.iter_requests(cached=True)}
             >= set(rids), what="requests in the cache")
    start = worker.passes
    wait_for(lambda: worker.passes >= start + passes, what="routing passes")


def test_other_labels_are_served_while_a_large_request_waits(env):
    launcher, worker = _start(env, max_cores=66)
    zuul = env.zuul
    fillers = _fulfil(zuul, [["filler"]] * 9)            # 36 of 66 cores
    huge = zuul.submit(["huge"])                         # 32: does not fit
    wait_for(lambda: _waiting_at_quota(worker, huge), what="huge waits")
    smalls = [zuul.submit(["small"]) for _ in range(30)]  # 30: fit
    for rid in smalls:
        assert zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
            "fulfilled"
    assert zuul.get_request(huge)["state"] == "pending"
    # Once nodes come back, the waiting request is served.
    zuul.release(fillers)
    assert zuul.wait_state(huge, {"fulfilled", "failed"})["state"] == \
        "fulfilled"


def test_same_label_keeps_its_order(env):
    launcher, worker = _start(env, max_cores=40)
    zuul = env.zuul
    fillers = _fulfil(zuul, [["filler"]] * 9)            # 36 of 40 cores
    first = zuul.submit(["big"])
    wait_for(lambda: _waiting_at_quota(worker, first), what="first waits")
    later = [zuul.submit(["big"]) for _ in range(3)]
    _seen_by_passes(launcher, worker, later)
    # Room for exactly one more big node: it goes to the first request.
    zuul.release(fillers[:1])
    assert zuul.wait_state(first, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    assert all(zuul.get_request(r)["state"] != "fulfilled" for r in later)
    # And the later ones follow in their own order as room appears.
    done = []
    for i, rid in enumerate(later):
        zuul.release(fillers[2 * i + 1:2 * i + 3])
        assert zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
            "fulfilled"
        done.append(rid)
        assert all(zuul.get_request(r)["state"] != "fulfilled"
                   for r in later if r not in done)


def test_a_request_waiting_past_the_bound_takes_what_frees_up(env):
    launcher, worker = _start(env, max_cores=40)
    worker.starve_after = 0.5
    zuul = env.zuul
    fillers = _fulfil(zuul, [["filler"]] * 9)            # 36 of 40 cores
    big = zuul.submit(["big"])
    wait_for(lambda: _waiting_at_quota(worker, big), what="big waits")
    wait_for(lambda: worker._waiting() is not None
             and worker._waiting().starved, what="starvation bound")
    # 4 cores are free: small requests would fit, but the pool now starts
    # nothing that keeps the big one from fitting.
    smalls = [zuul.submit(["small"]) for _ in range(4)]
    _seen_by_passes(launcher, worker, smalls)
    assert all(zuul.get_request(r)["state"] == "requested" for r in smalls)
    zuul.release(fillers[:1])                            # 8 free: big fits
    got = zuul.wait_state(big, {"fulfilled", "failed"})
    assert got["state"] == "fulfilled"
    zuul.release(fillers[1:2])                           # 4 more: smalls
    for rid in smalls:
        req = zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "fulfilled"
        assert req["state_time"] >= got["state_time"]
