"""Builders for Azure unit tests: config values, launch specs, ARM errors.

ARM errors are real azure-core ``HttpResponseError`` objects over a real
``requests.Response``, built exactly as the mgmt SDKs raise them
(``ARMErrorFormat``); nothing of the SDK is patched.
"""

from __future__ import annotations

import json

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport._requests_basic import \
    RequestsTransportResponse
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from nodepool.config.model import CloudImage, Pool, PoolLabel
from nodepool.driver.statemachine import LaunchSpec, RequestInfo

LABEL_DEFAULTS = {"hardware-profile": {"vm-size": "Standard_B2s"},
                  "tags": {}, "dynamic-tags": {}, "user-data": None,
                  "custom-data": None, "volume-size": None}
POOL_DEFAULTS = {"ipv4": True, "ipv6": False, "public-ipv4": True,
                 "public-ipv6": False, "use-internal-ip": False,
                 "host-key-checking": False}
IMAGE_DEFAULTS = {"image-reference": {"publisher": "Canonical",
                                      "offer": "ubuntu", "sku": "server",
                                      "version": "latest"},
                  "image-id": None, "image-filter": None,
                  "shared-gallery-image": None,
                  "community-gallery-image": None, "password": None,
                  "generate-password": False, "key": "ssh-ed25519 AAAA k"}


def make_spec(node_id: str = "0000000001", label: dict | None = None,
              pool: dict | None = None, image: dict | None = None,
              request: RequestInfo | None = None, attempt: int = 1,
              diskimage: str | None = None,
              image_external_id: str | None = None) -> LaunchSpec:
    img = CloudImage(name="ubuntu", username="zuul",
                     settings={**IMAGE_DEFAULTS, **(image or {})})
    plabel = PoolLabel(name="small", cloud_image="ubuntu",
                       diskimage=diskimage, image=img,
                       settings={**LABEL_DEFAULTS, **(label or {})})
    ppool = Pool(name="main", provider_name="azure",
                 labels={"small": plabel},
                 settings={**POOL_DEFAULTS, **(pool or {})})
    return LaunchSpec(node_id=node_id, hostname=f"np{node_id}",
                      provider_name="azure", pool=ppool, label=plabel,
                      request=request or RequestInfo(id="200-0000000007"),
                      attempt=attempt, image_external_id=image_external_id)


def arm_error(status: int, code: str | None = None, message: str = "m",
              details: list[str] = (), headers: dict | None = None
              ) -> HttpResponseError:
    response = requests.Response()
    response.status_code = status
    body = {"error": {"code": code, "message": message,
                      "details": [{"code": d, "message": d}
                                  for d in details]}} if code else {}
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.headers.update(headers or {})
    wrapped = RequestsTransportResponse(
        HttpRequest("PUT", "https://127.0.0.1/subscriptions/x"), response)
    return HttpResponseError(response=wrapped, error_format=ARMErrorFormat)


@pytest.fixture
def spec_factory():
    return make_spec


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()
