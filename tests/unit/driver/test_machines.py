"""The launch policy of every cloud driver, without a cloud.

``CreateMachine``, ``DeleteMachine``, ``Call``/``RetryDelay`` and
``PendingCreates`` are stepped by hand: the machines' calls are futures the
test completes, and time is a clock the test moves.
"""

from __future__ import annotations

import enum
import logging
from concurrent.futures import Future

import pytest

from nodepool.driver import errors
from nodepool.driver.backoff import AccessGate
from nodepool.driver.calls import Call, RetryDelay
from nodepool.driver.machines import (CreateMachine, DeleteMachine,
                                      PendingCreates)
from nodepool.driver.statemachine import LaunchSpec


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def spec(node_id: str = "0000000001") -> LaunchSpec:
    return LaunchSpec(node_id=node_id, hostname=f"np{node_id}",
                      provider_name="p", pool=None, label=None)


class Create(CreateMachine):
    """A cloud whose create answers an id, then one BOOTING step."""

    class State(enum.Enum):
        BOOTING = "booting"

    STEPS = {State.BOOTING: "booting"}

    def __init__(self, clock, gate=None, node_id="0000000001"):
        super().__init__(spec(node_id), gate or AccessGate("p", clock=clock),
                         clock)
        self.calls: list[Future] = []
        self.orphans: list = []
        self.running = False

    def send_create(self) -> Future:
        self.calls.append(Future())
        return self.calls[-1]

    def identify(self, answer):
        return {"id": answer}

    def answered(self, answer):
        return self.State.BOOTING

    def delete_orphan(self, external_id) -> None:
        self.orphans.append(external_id)

    def booting(self):
        return self.Phase.READY if self.running else self.State.BOOTING


def fail_next(machine, error):
    machine.calls[-1].set_exception(error)
    machine.advance()


# -- the create steps ---------------------------------------------------------
def test_create_reads_the_answer_then_the_clouds_steps():
    machine = Create(Clock())
    assert machine.state is Create.Phase.SUBMIT
    assert not machine.advance() and machine.state is Create.Phase.CREATING
    assert not machine.advance()              # the call is still running
    machine.calls[0].set_result("i-1")
    machine.advance()
    assert machine.external_id == {"id": "i-1"}
    assert machine.state is Create.State.BOOTING
    machine.running = True
    assert machine.advance() and machine.complete


@pytest.mark.parametrize("error", [errors.TransientError("503"),
                                   errors.ThrottledError("429")])
def test_a_throttle_or_transient_error_fails_the_create(error):
    # LimitedApi is the one layer that repeats these: what reaches the
    # machine is final, and the machine does not send the call again.
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].set_exception(error)
    with pytest.raises(type(error)):
        machine.advance()
    assert len(machine.calls) == 1


def test_access_errors_wait_for_the_gate_each_time():
    clock = Clock()
    gate = AccessGate("p", clock=clock, base=1.0)
    machine = Create(clock, gate)
    machine.advance()
    waits, expected = [], []
    for _ in range(4):
        error = errors.EndpointError("refused")
        gate.answered(gate.admit(), error)    # another failed probe
        expected.append(gate.delay_for())
        fail_next(machine, error)
        assert machine.state is Create.Phase.SUBMIT
        sent, start = len(machine.calls), clock.now
        while len(machine.calls) == sent:
            clock.now += 0.5
            machine.advance()
        waits.append(clock.now - start)
    # sent again when the gate opens (stepped every 0.5 s), each time
    assert all(e <= w < e + 0.5 for w, e in zip(waits, expected)), \
        (waits, expected)
    assert expected == sorted(expected) and expected[-1] > expected[0]


def test_an_access_error_waits_exactly_for_the_gate():
    clock = Clock()
    gate = AccessGate("p", clock=clock, base=7.0)
    machine = Create(clock, gate)
    machine.advance()
    error = errors.CredentialError("401")
    gate.answered(gate.admit(), error)        # the provider's gate closes
    fail_next(machine, error)
    clock.now += 6.9
    machine.advance()
    assert len(machine.calls) == 1
    clock.now += 0.1
    machine.advance()
    assert len(machine.calls) == 2


def test_a_partial_batch_answer_is_sent_again_at_once():
    machine = Create(Clock())
    machine.advance()
    fail_next(machine, errors.Unfulfilled("EC2 started 2 of 3"))
    assert len(machine.calls) == 2            # same step, no back-off
    assert machine.state is Create.Phase.CREATING
    assert machine.create.delay.attempts == 0


@pytest.mark.parametrize("error", [errors.QuotaError("q"),
                                   errors.LaunchError("bad"),
                                   errors.ConfigurationError("no such type")])
def test_other_create_errors_are_the_launchers(error):
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].set_exception(error)
    with pytest.raises(type(error)):
        machine.advance()


def test_a_cancelled_create_fails_the_attempt():
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].cancel()
    with pytest.raises(errors.LaunchError, match="create cancelled"):
        machine.advance()


def test_abandon_cancels_a_create_not_yet_sent():
    machine = Create(Clock())
    machine.advance()
    machine.abandon()
    assert machine.calls[0].cancelled() and machine.orphans == []


def test_abandon_deletes_what_a_running_create_makes_late(caplog):
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].set_running_or_notify_cancel()   # a worker sends it
    machine.abandon()
    assert machine.orphans == []
    with caplog.at_level(logging.INFO, "nodepool.driver"):
        machine.calls[0].set_result("i-9")
    assert machine.orphans == [{"id": "i-9"}]
    assert "Node 0000000001: deleting {'id': 'i-9'} of an abandoned " \
        "attempt" in caplog.text


def test_abandon_deletes_an_answer_not_yet_read():
    # The launcher never learnt its id: nobody else would delete it.
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].set_result("i-3")
    machine.abandon()
    assert machine.orphans == [{"id": "i-3"}]


def test_abandon_of_a_failed_or_answered_create_deletes_nothing():
    machine = Create(Clock())
    machine.advance()
    machine.calls[0].set_running_or_notify_cancel()
    machine.abandon()
    machine.calls[0].set_exception(errors.LaunchError("refused"))
    assert machine.orphans == []
    other = Create(Clock())
    other.advance()
    other.calls[0].set_result("i-1")
    other.advance()                           # read: external_id is known
    other.abandon()
    assert other.orphans == []


# -- Call on its own ----------------------------------------------------------
def test_a_call_with_max_attempts_raises_its_last_access_error():
    clock = Clock()
    gate = AccessGate("p", clock=clock)
    call = Call("DELETE of x", gate, clock,
                cancelled=errors.TransientError, max_attempts=3)
    for _ in range(2):
        call.send(Future())
        call.future.set_exception(errors.CredentialError("401"))
        assert call.poll() is False
        clock.now += 120
    call.send(Future())
    call.future.set_exception(errors.CredentialError("401"))
    with pytest.raises(errors.CredentialError):
        call.poll()


def test_a_throttled_call_is_raised_at_once():
    call = Call("DELETE of x", AccessGate("p"), Clock(),
                cancelled=errors.TransientError, max_attempts=3)
    call.send(Future())
    call.future.set_exception(errors.ThrottledError("429"))
    with pytest.raises(errors.ThrottledError):
        call.poll()
    assert call.delay.attempts == 0


def test_a_cancelled_delete_call_is_transient():
    call = Call("DELETE of x", AccessGate("p"), Clock(),
                cancelled=errors.TransientError)
    future = Future()
    call.send(future)
    future.cancel()
    with pytest.raises(errors.TransientError, match="DELETE of x cancelled"):
        call.poll()


def test_abandon_can_leave_answers_already_in_alone():
    call = Call("PUT of x", AccessGate("p"), Clock())
    future = Future()
    call.send(future)
    future.set_result("made")
    deleted = []
    call.abandon(deleted.append, answered=False)
    assert deleted == []
    call.abandon(deleted.append)
    assert deleted == ["made"]


def test_retry_delay_is_due_when_the_gate_admits_a_call_again():
    clock = Clock()
    gate = AccessGate("p", clock=clock)
    delay = RetryDelay(gate, clock)
    assert delay.due
    waits = []
    for _ in range(3):
        gate.answered(gate.admit(), errors.CredentialError("401"))
        waits.append(delay.failed(errors.CredentialError("401")))
        assert not delay.due and gate.delay_for() > 0
        clock.now += waits[-1]
        assert delay.due and gate.delay_for() == 0
    # The gate's own back-off (doubling from its base), no second one.
    assert waits == [1.0, 2.0, 4.0] and delay.attempts == 3


# -- the delete steps ---------------------------------------------------------
class Look:
    def __init__(self, record, fresh=True):
        self.record, self.fresh = record, fresh


class Delete(DeleteMachine):
    WAIT_LIMIT = 50.0

    def __init__(self, clock, immediate=False):
        super().__init__("i-1", immediate, clock)
        self.calls: list[Future] = []
        self.look = Look({"state": "deleting"}, fresh=False)
        self.watched = False

    def send_delete(self) -> Future:
        self.calls.append(Future())
        return self.calls[-1]

    def watch(self):
        self.watched = True

    def unwatch(self):
        self.watched = False

    def lookup(self):
        return self.look

    def is_deleted(self, record):
        return record["state"] == "deleted"


def accepted(machine):
    machine.advance()
    machine.calls[-1].set_result(None)
    machine.advance()
    assert machine.state is Delete.Phase.WAITING and machine.watched


def test_delete_not_found_counts_as_gone():
    machine = Delete(Clock())
    machine.advance()
    machine.calls[0].set_exception(errors.NotFoundError("no such id"))
    assert machine.advance() and machine.state is Delete.Phase.DONE


def test_delete_waits_until_a_fresh_listing_lacks_the_instance():
    machine = Delete(Clock())
    accepted(machine)
    machine.look = Look(None, fresh=False)    # older than the delete
    assert not machine.advance()
    machine.look = Look({"state": "deleted"})
    assert machine.advance() and not machine.watched
    other = Delete(Clock())
    accepted(other)
    other.look = Look(None, fresh=True)
    assert other.advance()


def test_delete_errors_are_raised_for_the_deleter_to_repeat():
    machine = Delete(Clock())
    machine.advance()
    machine.calls[0].set_exception(errors.ThrottledError("slow"))
    with pytest.raises(errors.ThrottledError):
        machine.advance()


def test_delete_gives_up_after_its_wait_limit():
    clock = Clock()
    machine = Delete(clock)
    accepted(machine)
    clock.now += Delete.WAIT_LIMIT
    assert not machine.advance()
    clock.now += 1
    with pytest.raises(errors.TransientError, match="still there"):
        machine.advance()
    assert not machine.watched


# -- PendingCreates -----------------------------------------------------------
def test_a_new_attempt_abandons_the_running_one():
    clock = Clock()
    pending = PendingCreates()
    first = pending.attempt(Create(clock))
    first.advance()
    first.calls[0].set_running_or_notify_cancel()
    second = pending.attempt(Create(clock))
    first.calls[0].set_result("i-old")
    assert first.orphans == [{"id": "i-old"}]
    assert second.orphans == [] and second.calls == []


def test_a_complete_attempt_is_not_abandoned():
    clock = Clock()
    pending = PendingCreates()
    first = pending.attempt(Create(clock))
    first.advance()
    first.calls[0].set_result("i-1")
    first.advance()
    first.running = True
    first.advance()
    first.abandon = None                      # would fail if called
    pending.attempt(Create(clock))


def test_finished_and_stale_attempts_are_forgotten():
    clock = Clock()
    pending = PendingCreates(horizon=60.0)
    stale = [pending.attempt(Create(clock, node_id=f"{n:010d}"))
             for n in range(40)]
    clock.now += 61
    for n in range(40, 64):
        pending.attempt(Create(clock, node_id=f"{n:010d}"))
    assert len(pending) == 24 and stale
