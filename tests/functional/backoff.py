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

import pytest

from nodepool.driver import backoff

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
