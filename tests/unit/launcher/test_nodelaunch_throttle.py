"""An access error that reaches a machine step is waited out, and nothing
in the launcher reports to a limiter.

Throttles and transient errors are the driver's API client's
(``nodepool.driver.limitedapi``): it reported and repeated them, and one
that reaches the launcher fails the attempt (tests/functional/*/
test_one_retry_layer.py).  An access error is the provider's access
gate's: the node launcher only repeats the step later, within the launch
timeout."""

from __future__ import annotations

import enum
from types import SimpleNamespace

from nodepool.driver import errors
from nodepool.driver.ratelimit import RateLimiter
from nodepool.driver.statemachine import StateMachine
from nodepool.launcher.nodelaunch import NodeLaunch, Outcome
from nodepool.zk.models import Node, NodeState


class Throttled(StateMachine):
    """Each step's call finds the provider's access gate closed."""

    class State(enum.Enum):
        SUBMIT = 1
        READY = 2

    STEPS = {State.SUBMIT: "submit"}
    TERMINAL = frozenset({State.READY})

    def __init__(self, limiter):
        super().__init__()
        self.limiter = limiter

    def submit(self):
        raise errors.CredentialError("401")


def test_an_access_error_step_is_repeated_and_reports_nothing():
    limiter = RateLimiter("p-write", 10.0)
    # The manager has no throttle path to call: a launcher that tried
    # would raise here instead of waiting.
    manager = SimpleNamespace(
        zk=None, adapter=None,
        provider=SimpleNamespace(name="p", launch_timeout=60.0,
                                 launch_retries=3),
        offering_unavailable=lambda pool, label: None)
    now = [1000.0]
    launcher = NodeLaunch(manager, Node(id="0000000001",
                                          state=NodeState.BUILDING),
                            SimpleNamespace(settings={}),
                            SimpleNamespace(settings={}),
                            clock=lambda: now[0])
    launcher.attempt_start = now[0]
    launcher.machine = Throttled(limiter)
    for _ in range(3):
        assert launcher.advance() is False
    assert limiter.stats.throttled == 0
    assert launcher.outcome is Outcome.RUNNING and launcher.attempt == 1
