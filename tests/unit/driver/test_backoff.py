"""AccessGate and RepeatLog with a fake clock: no test really waits."""

from __future__ import annotations

import logging

import pytest

from nodepool.driver import errors
from nodepool.driver.backoff import AccessGate, RepeatLog, log_failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(message: str = "HTTP 401") -> errors.CredentialError:
    return errors.CredentialError(f"list servers: {message}")


def call(gate: AccessGate, outcome: BaseException | None = None) -> bool:
    """One call through the gate; False when it was held back."""
    try:
        ticket = gate.admit()
    except errors.AccessError:
        return False
    gate.answered(ticket, outcome)
    return True


def probe_times(gate: AccessGate, clock: Clock, until: float,
                step: float = 0.01) -> list[float]:
    """Call every ``step`` s while the cloud refuses; the times that
    reached the cloud."""
    reached = []
    while clock.now < until:
        if call(gate, refused()):
            reached.append(round(clock.now, 2))
        clock.now += step
    return reached


def test_open_gate_admits_everything():
    gate = AccessGate("p", clock=Clock())
    assert all(call(gate) for _ in range(100))
    assert not gate.closed and gate.error is None


def test_delay_doubles_up_to_the_cap():
    clock = Clock()
    gate = AccessGate("p", base=1.0, cap=8.0, clock=clock)
    start = clock.now
    reached = [t - start for t in probe_times(gate, clock, start + 40)]
    gaps = [round(b - a) for a, b in zip(reached, reached[1:])]
    assert gaps[:5] == [1, 2, 4, 8, 8]
    assert set(gaps[3:]) == {8}
    # 4000 calls were made, 8 reached the cloud (0, 1, 3, 7, 15, 23...)
    assert len(reached) == 8 and gate.held > 3900


def test_held_back_calls_raise_the_same_kind_of_error():
    clock = Clock()
    gate = AccessGate("p", clock=clock)
    call(gate, errors.EndpointError("connect: refused"))
    with pytest.raises(errors.EndpointError, match="backing off"):
        gate.admit()
    assert gate.closed and 0 < gate.delay_for() <= 1.0


def test_success_resets_the_delay():
    clock = Clock()
    gate = AccessGate("p", base=1.0, cap=60.0, clock=clock)
    probe_times(gate, clock, clock.now + 20)
    assert gate.delay_for() > 1.0
    clock.now += 60
    assert call(gate, None)                      # the probe works
    assert not gate.closed
    call(gate, refused())                        # a new run starts at base
    assert gate.delay_for() == pytest.approx(1.0)


def test_any_cloud_answer_opens_the_gate():
    clock = Clock()
    gate = AccessGate("p", clock=clock)
    call(gate, refused())
    clock.now += 1.5
    assert call(gate, errors.NotFoundError("server gone"))
    assert not gate.closed


def test_calls_already_in_flight_do_not_escalate():
    clock = Clock()
    gate = AccessGate("p", base=1.0, clock=clock)
    tickets = [gate.admit() for _ in range(10)]  # all sent, gate open
    for ticket in tickets:
        gate.answered(ticket, refused())
    assert gate.delay_for() == pytest.approx(1.0)
    assert gate.failures == 10


def test_a_hanging_probe_does_not_let_everyone_through():
    clock = Clock()
    gate = AccessGate("p", base=1.0, clock=clock)
    call(gate, refused())
    clock.now += 1.0
    gate.admit()                                 # the probe, never answers
    assert not call(gate, refused())
    clock.now += 0.5
    assert not call(gate, refused())


def test_log_is_one_line_then_summaries(caplog):
    caplog.set_level(logging.DEBUG, "nodepool.driver.access")
    clock = Clock()
    gate = AccessGate("os", base=0.1, cap=1.0, summary_interval=10.0,
                      clock=clock)
    probe_times(gate, clock, clock.now + 35)
    clock.now += 1
    call(gate, None)
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert lines[0].levelno == logging.ERROR
    assert lines[0].getMessage().startswith(
        "Provider os: credentials refused: list servers: HTTP 401")
    summaries = [r.getMessage() for r in lines[1:-1]]
    assert len(summaries) == 3
    assert all("repeated" in s and s.startswith("Provider os") for s in
               summaries)
    assert lines[-1].getMessage().startswith(
        "Provider os: cloud calls succeed again after")
    assert not any(r.exc_info for r in lines)
    assert any(r.exc_info for r in caplog.records
               if r.levelno == logging.DEBUG)


def test_a_different_failure_is_a_new_first_line(caplog):
    caplog.set_level(logging.INFO, "nodepool.driver.access")
    clock = Clock()
    gate = AccessGate("os", clock=clock)
    call(gate, refused())
    clock.now += 1
    call(gate, errors.EndpointError("connect: refused"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "endpoint unreachable" in messages[1]


def test_repeat_log_counts_between_lines(caplog):
    caplog.set_level(logging.INFO, "t")
    clock = Clock()
    repeats = RepeatLog(logging.getLogger("t"), 5.0, clock)
    for _ in range(20):
        repeats.report("k", "Host h unreachable", "timeout")
        clock.now += 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Host h unreachable: timeout"
    assert messages[1] == ("Host h unreachable -- repeated 5 times in the "
                           "last 5s: timeout")
    assert len(messages) == 4
    repeats.clear("k", "Host h reachable")
    repeats.clear("k", "Host h reachable")
    assert [r.getMessage() for r in caplog.records][4:] == [
        "Host h reachable"]


def test_log_failure_sends_access_errors_to_debug(caplog):
    caplog.set_level(logging.DEBUG, "t")
    logger = logging.getLogger("t")
    log_failure(logger, refused(), "Could not list: %s", "x")
    log_failure(logger, errors.TransientError("503"), "Could not list: %s",
                "y")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "Could not list: x"),
        (logging.WARNING, "Could not list: y")]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        AccessGate("p", base=0)
    with pytest.raises(ValueError):
        AccessGate("p", base=10, cap=1)


def test_transient_failures_and_bugs_say_nothing_about_access():
    clock = Clock()
    gate = AccessGate("p", base=1.0, clock=clock)
    call(gate, refused())
    clock.now += 1.0
    assert call(gate, errors.TransientError("connection reset"))
    assert gate.error is not None          # still backing off
    assert not call(gate, None)            # the next probe: a delay later
    clock.now += 1.0
    assert call(gate, ValueError("a bug"))
    assert gate.error is not None
    clock.now += 1.0
    assert call(gate, errors.ThrottledError("429"))   # an answer
    assert gate.error is None
