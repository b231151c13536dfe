import enum

import pytest

from nodepool.driver.statemachine import LaunchSpec, StateMachine, launch_token


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class TwoStep(StateMachine):
    class State(enum.Enum):
        START = "start"
        WAITING = "waiting"
        DONE = "done"

    STEPS = {State.START: "start", State.WAITING: "waiting"}
    TERMINAL = frozenset({State.DONE})

    def __init__(self, clock):
        super().__init__(clock)
        self.ready = False

    def start(self):
        self.external_id = "i-1"
        return self.State.WAITING

    def waiting(self):
        return self.State.DONE if self.ready else self.State.WAITING


def test_steps_until_terminal_and_records_state_time():
    clock = Clock()
    m = TwoStep(clock)
    assert m.state is TwoStep.State.START
    clock.now = 101.0
    assert m.advance() is False
    assert m.state is TwoStep.State.WAITING and m.external_id == "i-1"
    assert m.state_time == 101.0
    clock.now = 105.0
    assert m.advance() is False          # same state: waiting
    assert m.state_time == 101.0
    m.ready = True
    assert m.advance() is True
    assert m.complete and m.advance() is True


def test_a_step_that_returns_nothing_is_a_bug():
    class Broken(TwoStep):
        def start(self):
            return None

    with pytest.raises(TypeError, match="returned no state"):
        Broken(Clock()).advance()


def test_launch_spec_metadata_tags():
    class Pool:
        name = "main"
    spec = LaunchSpec(node_id="0000000007", hostname="np0000000007",
                      provider_name="aws-east", pool=Pool(), label=None)
    assert spec.metadata == {"nodepool_node_id": "0000000007",
                             "nodepool_pool_name": "main",
                             "nodepool_provider_name": "aws-east"}


def test_launch_spec_metadata_carries_the_installation():
    class Pool:
        name = "main"
    spec = LaunchSpec(node_id="0000000007", hostname="np0000000007",
                      provider_name="aws-east", pool=Pool(), label=None,
                      installation="0123456789abcdef")
    assert spec.metadata == {"nodepool_node_id": "0000000007",
                             "nodepool_pool_name": "main",
                             "nodepool_provider_name": "aws-east",
                             "nodepool_installation": "0123456789abcdef"}


def test_launch_tokens_differ_between_installations():
    # EC2 answers a token it has seen with the instance it made for it:
    # two installations' node 0000000001 must not send the same one.
    assert launch_token("0000000001", 1, "a") != \
        launch_token("0000000001", 1, "b")
    assert launch_token("0000000001", 1, "a") == \
        launch_token("0000000001", 1, "a")
    assert launch_token("0000000001", 1) != launch_token("0000000001", 1,
                                                         "a")
    assert len(launch_token("1" * 300, 7, "x" * 64)) <= 64
