"""The status snapshot shows what ``Adapter.machinery()`` reports, and
nothing found behind the contract."""

from __future__ import annotations

from types import SimpleNamespace

from nodepool.driver.adapter import Adapter, Machinery
from nodepool.driver.batcher import Batcher
from nodepool.driver.createpool import CreatePool
from nodepool.driver.ratelimit import RateLimiter
from nodepool.web.state import ProviderView, _add_machinery


class Reporting(Adapter):
    def __init__(self):
        super().__init__(SimpleNamespace(name="p", driver="test"))
        self.limiter = RateLimiter("p-write", 5)
        self.create_pool = CreatePool("p", 2)
        self.batcher = Batcher("p-delete", lambda items: list(items))
        # Machinery the adapter keeps for itself: not on the status page.
        self.private = RateLimiter("p-private", 1)
        self.api = SimpleNamespace(read_limiter=RateLimiter("p-read", 50))

    def machinery(self) -> Machinery:
        return Machinery(limiters=(self.limiter,),
                         create_pools=(self.create_pool,),
                         batchers=(self.batcher,))

    def create_machine(self, spec):
        raise NotImplementedError

    def delete_machine(self, external_id, immediate=False):
        raise NotImplementedError

    def list_instances(self):
        return []


def test_the_snapshot_shows_only_the_reported_machinery():
    adapter = Reporting()
    adapter.batcher.add(1)
    adapter.batcher.stop()                 # one call of one item
    view = ProviderView("p", "test", 0, None, {}, {})
    _add_machinery(view, adapter)
    assert [x.name for x in view.limiters] == ["p-write"]
    assert view.limiters[0].rate == view.limiters[0].share_rate == 5
    assert [(x.name, x.workers) for x in view.create_pools] == [("p", 2)]
    assert [(b.name, b.batches, b.items, b.recent)
            for b in view.batchers] == [("p-delete", 1, 1, [1])]
    adapter.create_pool.shutdown(wait=False)


def test_the_snapshot_shows_the_configured_rate_and_our_share():
    # Three launchers share the account's rate budget: the view shows the
    # configured rate and this launcher's third of it apart.
    adapter = Reporting()
    adapter.limiter.set_share(1 / 3)
    view = ProviderView("p", "test", 0, None, {}, {})
    _add_machinery(view, adapter)
    (limiter,) = view.limiters
    assert limiter.rate == 5
    assert abs(limiter.share_rate - 5 / 3) < 1e-9
    assert abs(limiter.effective_rate - 5 / 3) < 1e-9
    adapter.create_pool.shutdown(wait=False)


def test_an_adapter_without_machinery_shows_none():
    class Bare(Reporting):
        def machinery(self):
            return Adapter.machinery(self)

    view = ProviderView("p", "test", 0, None, {}, {})
    _add_machinery(view, Bare())
    assert view.limiters == view.create_pools == view.batchers == []
