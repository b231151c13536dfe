"""The disruptions, one function per scenario.

Each runs one round (``harness.Round``) and returns its result.  The
random moment of a disruption comes from the suite's seeded RNG, so a bad
round can be replayed with ``--seed``.  The moment is drawn within the
burst's expected length (requests ÷ rate), so the launcher is caught with
requests pending, instances being created and nodes being built.
"""

from __future__ import annotations

import random
import time

from tools.faults.harness import Round, RoundResult

DONE_TIMEOUT = 180.0


def _moment(rng: random.Random, rnd: Round) -> float:
    return rng.uniform(0.1, max(0.3, 0.9 * rnd.n / rnd.rate))


def kill9(rnd: Round, rng: random.Random, clean_timeout: float
          ) -> RoundResult:
    rnd.submit()
    time.sleep(_moment(rng, rnd))
    rnd.launchers[-1].kill9()
    t_restart = time.time()
    rnd.result.notes.append(
        f"killed at +{t_restart - rnd.t_burst:.1f}s")
    rnd.start_launcher()
    return rnd.finish(t_restart, DONE_TIMEOUT, clean_timeout)


def zk_restart(rnd: Round, rng: random.Random, clean_timeout: float
               ) -> RoundResult:
    rnd.submit()
    time.sleep(_moment(rng, rnd))
    t_stop = time.time()
    rnd.zk.stop()
    time.sleep(2.0)          # the outage itself, not a synchronisation
    rnd.zk.start()
    t_restart = time.time()
    rnd.result.notes.append(
        f"ZooKeeper down at +{t_stop - rnd.t_burst:.1f}s for "
        f"{t_restart - t_stop:.1f}s")
    return rnd.finish(t_restart, DONE_TIMEOUT, clean_timeout)


def cloud_errors(rnd: Round, rng: random.Random, clean_timeout: float
                 ) -> RoundResult:
    aws = rnd.aws
    budget = max(2, rnd.n // 10)
    aws.inject_fault("InsufficientInstanceCapacity", action="RunInstances",
                     probability=0.3, count=budget)
    aws.inject_fault("InternalError", action="RunInstances",
                     probability=0.3, count=budget)
    aws.inject_fault("InternalError", action="TerminateInstances",
                     probability=0.5, count=budget)
    try:
        rnd.submit()
        return rnd.finish(rnd.t_burst, DONE_TIMEOUT, clean_timeout)
    finally:
        aws.clear_faults()


SCENARIOS = {"kill9": kill9, "zk-restart": zk_restart,
             "cloud-errors": cloud_errors}
