"""Fixtures for Azure driver tests: a LocalAzure over HTTPS, real ZooKeeper.

Each test gets its own ``LocalAzure`` (a fresh ARM with default knobs, a
resource group ``nodepool`` with network ``net``), a service-principal
file for ``auth-path`` and ``REQUESTS_CA_BUNDLE`` pointing at its CA, so
the launcher in the test process reaches it exactly as it would reach
Azure: through the real SDK, credentials and TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nodepool.driver import fake
from tests.functional.launcher.helpers import LauncherEnv
from tools.fakeazure import LocalAzure

RG = "nodepool"
LOCATION = "westus"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnXgkIlnRUSHn3bQdvtpAW1Mqi6"
       "Hh0MBA3WpWpNcUIr zuul@test")
#: VM create latency: long enough to be a real LRO, short for the suite
LATENCY = 0.2


@dataclass
class AzureEnv:
    local: LocalAzure
    auth_path: str

    def provider(self, name: str = "azure", pools=None, labels=None,
                 pool_extra: dict | None = None, images=None,
                 **extra) -> dict:
        pool = {"name": "main", "max-servers": 10,
                "host-key-checking": False,
                "labels": labels or [self.label()]}
        pool.update(pool_extra or {})
        provider = {
            "name": name, "driver": "azure", "location": LOCATION,
            "resource-group": RG, "resource-group-location": LOCATION,
            "auth-path": self.auth_path, "network": "net", "rate": 50,
            "cloud-images": images or [self.image()],
            "pools": pools or [pool],
        }
        provider.update(extra)
        return provider

    @staticmethod
    def image(name: str = "ubuntu", **extra) -> dict:
        image = {"name": name, "username": "zuul", "key": KEY,
                 "image-reference": {"publisher": "Canonical",
                                     "offer": "ubuntu-24_04-lts",
                                     "sku": "server", "version": "latest"}}
        image.update(extra)
        return image

    @staticmethod
    def label(name: str = "small", image: str = "ubuntu",
              size: str = "Standard_B2s", **extra) -> dict:
        label = {"name": name, "cloud-image": image,
                 "hardware-profile": {"vm-size": size}}
        label.update(extra)
        return label

    def resources(self, kind: str) -> list[dict]:
        """Stored resources of one type (``virtualMachines`` ...)."""
        return self.local.resources().get(kind, [])

    def names(self, kind: str) -> set[str]:
        return {r["name"] for r in self.resources(kind)}

    def calls(self, pattern: str) -> int:
        """Calls counted under route keys containing ``pattern``."""
        return sum(n for key, n in self.local.stats()["calls"].items()
                   if pattern in key)


@pytest.fixture
def azure(tmp_path, monkeypatch):
    local = LocalAzure(str(tmp_path / "azure"), vm_create_latency=LATENCY,
                       fixed_public_ipv4="127.0.0.1").start()
    try:
        local.ensure_network(RG, "net", location=LOCATION)
        auth = local.write_auth_file(str(tmp_path / "azure-auth.json"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", local.ca_path)
        yield AzureEnv(local, auth)
    finally:
        local.stop()


@pytest.fixture
def env(zk, tmp_path, azure):
    with LauncherEnv(zk, tmp_path) as e:
        yield e
    fake.CLOUDS.clear()
