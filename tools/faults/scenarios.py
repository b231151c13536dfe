"""The disruptions, one function per scenario.

Each runs one round (``harness.Round``) and returns its result.  The
random moment of a disruption comes from the suite's seeded RNG, so a bad
round can be replayed with ``--seed``.  The moment is drawn within the
burst's expected length (requests ÷ rate), so the launcher is caught with
requests pending, instances being created and nodes being built.
With batched creates and no EC2 buckets a burst of 100 is done in ~3 s,
so the window is short: 0.05 s up to 0.5 s + 20 ms per request.  How many
requests were still open at the disruption is noted per round, so a
round whose disruption came too late is visible as such.
"""

from __future__ import annotations

import random
import time

from tools.faults.harness import Round, RoundResult



def _moment(rng: random.Random, rnd: Round) -> float:
    return rng.uniform(0.05, 0.5 + 0.02 * rnd.n)


def _open_now(rnd: Round) -> int:
    return sum(q.get("state") not in ("fulfilled", "failed")
               for q in rnd.states().values())


def kill9(rnd: Round, rng: random.Random, done_timeout: float,
          clean_timeout: float) -> RoundResult:
    rnd.submit()
    time.sleep(_moment(rng, rnd))
    rnd.launchers[-1].kill9()
    t_restart = time.time()
    rnd.start_launcher()
    rnd.result.notes.append(
        f"killed at +{t_restart - rnd.t_burst:.1f}s with "
        f"{_open_now(rnd)} open")
    return rnd.finish(t_restart, done_timeout, clean_timeout)


def zk_restart(rnd: Round, rng: random.Random, done_timeout: float,
               clean_timeout: float) -> RoundResult:
    rnd.submit()
    time.sleep(_moment(rng, rnd))
    open_ = _open_now(rnd)
    t_stop = time.time()
    rnd.zk.stop()
    time.sleep(2.0)          # the outage itself, not a synchronisation
    rnd.zk.start()
    t_restart = time.time()
    rnd.result.notes.append(
        f"ZooKeeper down at +{t_stop - rnd.t_burst:.1f}s for "
        f"{t_restart - t_stop:.1f}s with {open_} open")
    return rnd.finish(t_restart, done_timeout, clean_timeout)


def ensemble_kill(rnd: Round, rng: random.Random, done_timeout: float,
                  clean_timeout: float) -> RoundResult:
    """kill -9 one member of a 3-server ensemble mid-burst (the leader or
    a random member, by the RNG); the quorum of the other two must carry
    on.  The member is restarted after the round, for the next one."""
    ens = rnd.zk
    rnd.submit()
    time.sleep(_moment(rng, rnd))
    open_ = _open_now(rnd)
    leader = ens.leader()
    victim = leader if leader is not None and rng.random() < 0.5 \
        else rng.randrange(len(ens.servers))
    t_kill = time.time()
    ens.kill(victim)
    role = "leader" if victim == leader else "follower"
    rnd.result.notes.append(
        f"killed ZooKeeper server {victim + 1} ({role}) at "
        f"+{t_kill - rnd.t_burst:.1f}s with {open_} open")
    try:
        return rnd.finish(t_kill, done_timeout, clean_timeout)
    finally:
        ens.restart(victim)


def cloud_errors(rnd: Round, rng: random.Random, done_timeout: float,
                 clean_timeout: float) -> RoundResult:
    aws = rnd.aws
    budget = max(2, rnd.n // 10)
    # The first call of each kind always fails (a batched burst makes
    # only a handful of calls), then a fraction of the following ones.
    # Capacity runs out in one zone (the "main" pool's subnet) for the
    # whole round: its offering is marked and the "spare" pool serves.
    short = rnd.boot["subnet_ids"][0]
    aws.inject_fault("InsufficientInstanceCapacity", action="RunInstances",
                     count=1, subnet=short)
    aws.inject_fault("InternalError", action="TerminateInstances", count=1)
    aws.inject_fault("InsufficientInstanceCapacity", action="RunInstances",
                     probability=0.5, count=None, subnet=short)
    aws.inject_fault("InternalError", action="RunInstances",
                     probability=0.2, count=budget)
    aws.inject_fault("InternalError", action="TerminateInstances",
                     probability=0.3, count=budget)
    try:
        rnd.submit()
        res = rnd.finish(rnd.t_burst, done_timeout, clean_timeout)
        res.notes.append(f"cloud calls failed: {_faulted(aws)}")
        return res
    finally:
        aws.clear_faults()


SCENARIOS = {"kill9": kill9, "zk-restart": zk_restart,
             "ensemble": ensemble_kill, "cloud-errors": cloud_errors}


def _faulted(aws) -> dict:
    """Which calls the injected faults answered (from the proxy's stats)."""
    return aws.stats().get("faults") or {}
