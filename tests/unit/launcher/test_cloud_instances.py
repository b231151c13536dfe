"""ProviderManager.cloud_instances adds no cache of its own: the adapter's
listing (``nodepool.driver.ttlcache``) is the one layer."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from nodepool.driver import errors
from nodepool.driver.adapter import Adapter
from nodepool.launcher.provider import ProviderManager


class Listing(Adapter):
    def __init__(self):
        super().__init__(SimpleNamespace(name="p", driver="test"))
        self.answers: list = []
        self.calls = 0

    def list_instances(self):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def create_machine(self, spec):
        raise NotImplementedError

    def delete_machine(self, external_id, immediate=False):
        raise NotImplementedError


def test_every_question_is_the_adapters_answer():
    adapter = Listing()
    manager = ProviderManager(adapter.provider, adapter, None, None, None)
    adapter.answers = [["a"], ["a", "b"], ["b"]]
    assert [manager.cloud_instances() for _ in range(3)] == [
        ["a"], ["a", "b"], ["b"]]
    assert adapter.calls == 3


def test_no_list_counts_nothing_and_is_logged_once(caplog):
    adapter = Listing()
    manager = ProviderManager(adapter.provider, adapter, None, None, None)
    adapter.answers = [errors.TransientError("503")] * 5 + [
        errors.CredentialError("refused"), ["a"]]
    with caplog.at_level(logging.DEBUG, logger=manager.log.name):
        assert [manager.cloud_instances() for _ in range(6)] == [[]] * 6
        assert manager.cloud_instances() == ["a"]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.name == manager.log.name]
    warnings = [m for level, m in lines if level == logging.WARNING]
    assert warnings == ["Could not list instances: 503"]
    assert (logging.INFO, "Listing instances works again") in lines
