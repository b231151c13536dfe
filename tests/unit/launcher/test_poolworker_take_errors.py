"""A take that fails because ZooKeeper is unavailable is one line per
request, not a traceback; a closing connection (shutdown: every queued take
fails at once) is not even a warning; any other error keeps its traceback."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss

from nodepool.zk.errors import ZooKeeperError
from tests.unit.launcher.test_poolworker_waiting import make_worker

BURST = 30


def failing_take(error):
    def take(request, decision):
        try:
            raise error
        except Exception as exc:
            raise ZooKeeperError(f"could not lock request {request.id}: "
                                 f"{exc!r}") from exc
    return take


@pytest.mark.parametrize("error, level", [
    (ConnectionClosedError("Connection has been closed"), logging.DEBUG),
    (ConnectionLoss(), logging.WARNING)])
def test_takes_failing_on_zookeeper_are_one_line_each(caplog, error, level):
    worker, _ = make_worker()
    worker.manager.end_take = lambda request_id: None
    worker._take = failing_take(error)
    try:
        with caplog.at_level(logging.DEBUG, logger="nodepool"):
            for i in range(BURST):
                worker._take_async(SimpleNamespace(id=f"200-{i:010d}"),
                                   "accept")
    finally:
        worker.io.shutdown()
    lines = [r for r in caplog.records if "take request" in r.getMessage()]
    assert len(lines) == BURST
    assert {r.levelno for r in lines} == {level}
    assert not [r for r in caplog.records if r.exc_info]
    assert worker.held() == (set(), set())


def test_any_other_take_error_keeps_its_traceback(caplog):
    worker, _ = make_worker()
    worker.manager.end_take = lambda request_id: None

    def take(request, decision):
        raise ValueError("a bug")
    worker._take = take
    try:
        worker._take_async(SimpleNamespace(id="200-0000000001"), "accept")
    finally:
        worker.io.shutdown()
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "Error taking request 200-0000000001" in record.getMessage()
