"""A throttle that reaches a machine step is not reported again.

The driver's API client (``nodepool.driver.limitedapi``) reported it to
its limiter, once, and repeated the call; the node launcher only repeats
the step later, within the launch timeout."""

from __future__ import annotations

import enum
from types import SimpleNamespace

from nodepool.driver import errors
from nodepool.driver.ratelimit import RateLimiter
from nodepool.driver.statemachine import StateMachine
from nodepool.launcher.nodelaunch import NodeLaunch, Outcome
from nodepool.zk.models import Node, NodeState


class Throttled(StateMachine):
    """Each step's call is throttled: the API reports it, then raises."""

    class State(enum.Enum):
        SUBMIT = 1
        READY = 2

    STEPS = {State.SUBMIT: "submit"}
    TERMINAL = frozenset({State.READY})

    def __init__(self, limiter):
        super().__init__()
        self.limiter = limiter

    def submit(self):
        self.limiter.throttled(2.0)         # what LimitedApi does, once
        raise errors.ThrottledError("429", retry_after=2.0)


def test_a_throttled_step_is_repeated_and_reported_only_by_the_api():
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
    assert limiter.stats.throttled == 3     # the API's reports, no more
    assert limiter.effective_rate == 10.0 * 0.5 ** 3
    assert launcher.outcome is Outcome.RUNNING and launcher.attempt == 1
