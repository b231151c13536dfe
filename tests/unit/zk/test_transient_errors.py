"""``is_transient``: connection trouble vs a verdict on the object."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (BadVersionError, ConnectionClosedError,
                              ConnectionLoss, NoNodeError,
                              OperationTimeoutError, SessionExpiredError)

from nodepool.zk import errors


def _wrapped(inner: BaseException, outer: type) -> BaseException:
    try:
        try:
            raise inner
        except type(inner) as exc:
            raise outer(f"could not write /x: {exc!r}") from exc
    except outer as exc:
        return exc


@pytest.mark.parametrize("inner", [
    ConnectionLoss(), OperationTimeoutError(), SessionExpiredError(),
    ConnectionClosedError("closed")])
def test_connection_trouble_is_transient_raw_and_wrapped(inner):
    assert errors.is_transient(inner)
    assert errors.is_transient(_wrapped(inner, errors.ZooKeeperError))
    assert errors.is_transient(_wrapped(inner, errors.LockError))


def test_caller_reported_trouble_is_transient():
    assert errors.is_transient(errors.Transient("could not lock new node"))


@pytest.mark.parametrize("exc", [
    NoNodeError(), BadVersionError(), errors.NotFound("gone"),
    errors.BadZnode("not json"), errors.LockError("held elsewhere"),
    ValueError("bug"), None])
def test_everything_else_is_not(exc):
    assert not errors.is_transient(exc)
    if exc is not None:
        assert not errors.is_transient(
            _wrapped(exc, errors.ZooKeeperError))
