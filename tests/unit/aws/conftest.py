"""Builders for AWS unit tests: config value objects and launch specs."""

from __future__ import annotations

import pytest

from nodepool.config.model import CloudImage, Pool, PoolLabel
from nodepool.driver.statemachine import LaunchSpec, RequestInfo

LABEL_DEFAULTS = {
    "instance-type": "t3.medium", "fleet": None, "key-name": "key",
    "ebs-optimized": False, "volume-type": None, "volume-size": None,
    "iops": None, "throughput": None, "userdata": None,
    "iam-instance-profile": None, "tags": {}, "dynamic-tags": {},
    "use-spot": False, "imdsv2": None, "dedicated-host": False,
}
POOL_DEFAULTS = {
    "subnet-id": "subnet-1", "security-group-id": "sg-1",
    "public-ipv4": True, "public-ipv6": False, "host-key-checking": False,
    "use-internal-ip": False, "availability-zone": None,
}


def make_spec(node_id: str = "0000000001", label: dict | None = None,
              pool: dict | None = None, request: RequestInfo | None = None,
              az: str | None = None, label_name: str = "small",
              pool_name: str = "main") -> LaunchSpec:
    image = CloudImage(name="ami", username="zuul",
                       settings={"image-id": "ami-1", "image-filters": None})
    plabel = PoolLabel(name=label_name, cloud_image="ami", image=image,
                       settings={**LABEL_DEFAULTS, **(label or {})})
    ppool = Pool(name=pool_name, provider_name="aws",
                 labels={label_name: plabel},
                 settings={**POOL_DEFAULTS, **(pool or {})})
    return LaunchSpec(node_id=node_id, hostname=f"np{node_id}",
                      provider_name="aws", pool=ppool, label=plabel, az=az,
                      request=request or RequestInfo(id="200-0000000007"))


@pytest.fixture
def spec_factory():
    return make_spec
