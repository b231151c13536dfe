"""What the back-off tests assert: the cloud's side and the log.

The tests refuse the provider's credentials (or serve a dead endpoint) on
the real local cloud and read, from that server, when each token request
(or signed call) arrived.  With the provider's ``AccessGate`` those come
in bursts that double their distance; without it they come every pass of
every worker.  The back-off starts at ``BASE`` here (not 1 s) so a test
sees five doublings in about three seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sized

import pytest

from nodepool.driver import backoff
from tests.functional.launcher.helpers import wait_for

BASE = 0.1
SUMMARY = 1.0
#: attempts closer than this to the previous one were sent together (calls
#: already under way when the gate closed)
BURST = 0.05


@pytest.fixture
def fast_backoff(monkeypatch):
    """Back-off from ``BASE`` (cap unchanged, 60 s) and a summary line
    every ``SUMMARY`` seconds, for gates made from now on."""
    monkeypatch.setattr(backoff, "BASE_DELAY", BASE)
    monkeypatch.setattr(backoff, "SUMMARY_INTERVAL", SUMMARY)


def probes(times: list[float], per_burst: int = 1) -> list[float]:
    """The start of each burst of attempts; with ``per_burst`` > 1 every
    attempt opens exactly that many connections, one after the other
    (under load further apart than ``BURST``), so they are counted off."""
    if per_burst > 1:
        return sorted(times)[::per_burst]
    out: list[float] = []
    for t in sorted(times):
        if not out or t - out[-1] > BURST:
            out.append(t)
    return out


def assert_backs_off(times: list[float], bursts: int,
                     period: float = 0.5, per_burst: int = 1) -> None:
    """The first ``bursts`` bursts of ``times`` follow the back-off: the
    n-th gap is ``BASE * 2**n`` -- never shorter, and no longer than that
    plus one pass of the worker that makes the next call, which runs every
    ``period`` seconds (a pool worker at most every 0.5 s; the deleted-node
    worker tries again only on its passes).  One attempt may open
    ``per_burst`` connections (a keyscan: one per key type)."""
    starts = probes(times, per_burst)[:bursts]
    assert len(starts) == bursts, starts
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    for n, gap in enumerate(gaps):
        delay = BASE * 2 ** n
        assert delay * 0.95 <= gap <= delay + period + 0.15, (n, gaps)
    # Nothing in between: every attempt of the window is in one burst.
    window = [t for t in times if t < starts[-1]]
    assert len(window) <= (bursts - 1) * per_burst + 4, (len(window),
                                                         starts)


def gate_lines(records, provider: str, kind: str) -> list:
    prefix = f"Provider {provider}: "
    return [r for r in records if r.levelno >= logging.INFO
            and r.getMessage().startswith(prefix)
            and (kind in r.getMessage()
                 or "cloud calls succeed again" in r.getMessage())]


def assert_logged_once(records, provider: str, kind: str,
                       markers: tuple[str, ...],
                       level: int = logging.ERROR) -> None:
    """One line at ``level`` for the failure, repeat summaries, no
    traceback at INFO or above, and no other INFO+ line that repeats the
    cloud's message (``markers``: words of that message)."""
    lines = gate_lines(records, provider, kind)
    assert lines, "no line from the provider's gate"
    first, rest = lines[0], lines[1:]
    assert first.levelno == level, first.getMessage()
    assert f"{kind}:" in first.getMessage()
    assert "back off" in first.getMessage()
    assert sum("back off" in r.getMessage() for r in lines) == 1
    summaries = [r for r in rest if "repeated" in r.getMessage()]
    assert summaries and all(r.levelno == logging.WARNING
                             for r in summaries)
    loud = [r for r in records if r.levelno >= logging.INFO]
    assert not [r for r in loud if r.exc_info], \
        [r.getMessage() for r in loud if r.exc_info]
    assert not [r for r in loud if "Traceback" in r.getMessage()]
    others = [r.getMessage() for r in loud if r not in lines
              and any(m in r.getMessage() for m in markers)]
    assert not others, others


def assert_recovered(records, provider: str, kind: str) -> None:
    lines = gate_lines(records, provider, kind)
    assert "cloud calls succeed again" in lines[-1].getMessage()
    assert lines[-1].levelno == logging.INFO


# -- the scenarios every cloud driver goes through --------------------------
@dataclass
class Refusal:
    """How a test refuses one cloud's credentials and sees the attempts."""
    provider: dict                       # the provider's config
    name: str                            # its name in the log lines
    markers: tuple[str, ...]             # words of the cloud's message
    attempts: Callable[[], list[float]]  # when the cloud refused a call
    refuse: Callable[[], None]
    restore: Callable[[], None]
    instances: Callable[[], Sized]       # what runs in the cloud for us


def assert_creates_back_off(env, caplog, refusal: Refusal) -> dict:
    """Credentials refused, a node asked for: six bursts of calls that
    double their distance, the request waits (nothing launched); once
    accepted again the request is fulfilled.  One line for the failure,
    one for the recovery.  Returns the fulfilled request."""
    caplog.set_level(logging.INFO)
    refusal.refuse()
    env.write_config([refusal.provider])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    wait_for(lambda: len(refusal.attempts()) >= 6, timeout=30,
             what="six refused calls")
    assert_backs_off(refusal.attempts(), bursts=6)
    assert env.zuul.get_request(rid)["state"] == "pending"
    assert not len(refusal.instances())
    refusal.restore()
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=30)
    assert req["state"] == "fulfilled"
    assert len(refusal.instances()) == 1
    assert_logged_once(caplog.records, refusal.name, "credentials refused",
                       refusal.markers)
    assert_recovered(caplog.records, refusal.name, "credentials refused")
    return req


def assert_deletes_back_off(env, caplog, refusal: Refusal, bursts: int,
                            period: float) -> None:
    """A released node while the credentials are refused: its delete (and
    the listings) back off over ``bursts`` bursts -- each late by at most
    ``period``, a pass of the deleted-node worker -- and the instance
    stays; once accepted again the instance and the node go.  One line
    for the failure, one for the recovery."""
    env.write_config([refusal.provider])
    env.start_launcher()
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled"})["state"] == "fulfilled"
    nodes = env.zuul.accept(rid)
    assert len(refusal.instances()) == 1
    caplog.set_level(logging.INFO)
    refusal.refuse()
    env.zuul.release(nodes)
    wait_for(lambda: len(refusal.attempts()) >= bursts, timeout=30,
             what=f"{bursts} refused calls")
    assert_backs_off(refusal.attempts(), bursts=bursts, period=period)
    assert len(refusal.instances()) == 1     # not deleted meanwhile
    assert env.zuul.get_node(nodes[0])["state"] == "deleting"
    refusal.restore()
    env.zuul.wait_node_gone(nodes[0])
    wait_for(lambda: not len(refusal.instances()), what="instance deleted")
    assert_logged_once(caplog.records, refusal.name, "credentials refused",
                       refusal.markers)
    assert_recovered(caplog.records, refusal.name, "credentials refused")


def assert_dead_endpoint_backs_off(env, caplog, provider: dict, name: str,
                                   dead) -> None:
    """``provider`` reaches its cloud through ``dead`` (a
    ``tools.deadend.DeadEnd``, which drops every connection): a node asked
    for makes six bursts of connections that double their distance, and
    one line names the endpoint."""
    caplog.set_level(logging.INFO)
    env.write_config([provider])
    env.start_launcher()
    env.zuul.submit(["small"])
    wait_for(lambda: len(dead.connections()) >= 6, timeout=30,
             what="six connections to the dead endpoint")
    assert_backs_off(dead.connections(), bursts=6)
    assert_logged_once(caplog.records, name, "endpoint unreachable",
                       (f"127.0.0.1:{dead.port}",))
