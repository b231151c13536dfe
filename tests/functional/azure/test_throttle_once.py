"""One layer handles a 429: ``AzureApi`` (``LimitedApi``'s loop).

Through the real azure-mgmt clients (``retry_total=0``, as the driver
builds them) against the local Azure: each 429 halves the limiter it
came through exactly once, Retry-After holds the repeat, and azure-core
repeats nothing behind the limiter's back.
"""

from __future__ import annotations

import time

import pytest

from nodepool.driver.azure.api import AzureApi
from nodepool.driver.azure.auth import Clients, load_auth
from tests.functional.azure.conftest import RG

VMS = ("GET /subscriptions/{subscriptionId}/resourceGroups/"
       "{resourceGroupName}/providers/Microsoft.Compute/virtualMachines")


@pytest.fixture
def clients(azure):
    clients = Clients(load_auth(azure.auth_path))
    yield clients
    clients.close()


def list_vms(api, clients):
    return api.read("LIST vms", lambda: list(
        clients.compute.virtual_machines.list(RG)))


def test_each_429_halves_the_limiter_once_and_retry_after_holds(
        azure, clients):
    api = AzureApi("azure", rate=10.0)
    list_vms(api, clients)                  # token fetched
    limiter = api.read_limiter
    azure.local.configure(throttle_next=1, retry_after=0.3,
                          throttle_match="GET */virtualMachines")
    calls = azure.local.stats()["calls"][VMS]
    started = time.monotonic()
    assert list_vms(api, clients) == []
    assert time.monotonic() - started >= 0.3
    assert azure.local.stats()["throttled"] == 1
    assert azure.local.stats()["calls"][VMS] - calls == 2
    assert api.failures["LIST vms"] == 1
    assert limiter.stats.throttled == 1
    assert limiter.effective_rate == pytest.approx(
        limiter.rate * limiter.backoff + limiter.recovery)

    azure.local.configure(throttle_next=2, retry_after=0.05)
    list_vms(api, clients)
    assert azure.local.stats()["throttled"] == 3
    assert limiter.stats.throttled == 3     # one report per 429 answer
    assert api.limiter.stats.throttled == 0
