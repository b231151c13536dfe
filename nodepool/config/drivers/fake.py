"""Schema of the ``fake`` driver: an in-memory cloud for tests and benchmarks.

Not a production driver: ``nodepool.driver.fake`` launches nothing real.
It shares the cloud drivers' common keys so the launcher core is exercised
exactly as with a real cloud.  Extra provider keys: ``rate`` (requests per
second, default 0 = unlimited), ``create-latency`` and ``boot-time``
(seconds), ``max-servers`` (the fake cloud's instance quota).  Pool keys as
AWS: ``max-cores``, ``max-ram``, ``host-key-checking`` (default false),
``use-internal-ip``.  Label keys: ``cloud-image`` (required), ``cores``,
``ram``.
"""

from __future__ import annotations

from voluptuous import Required

from nodepool.config.drivers import common
from nodepool.config.drivers.common import (
    CLOUD_PROVIDER_COMMON, IMAGE_CONNECTION, POOL_COMMON, PROVIDER_COMMON)
from nodepool.config.driverschema import (
    BuildContext, CheckContext, DriverSchema)
from nodepool.config.errors import Issue, Path
from nodepool.config.model import Pool, PoolLabel, Provider
from nodepool.config.validators import Int, ListOf, Rate, Struct

LABEL = Struct({Required("name"): str, Required("cloud-image"): str,
                "cores": Int, "ram": Int, "host-key-checking": bool})
POOL = Struct({**POOL_COMMON, Required("labels"): ListOf(LABEL),
               "max-cores": Int, "max-ram": Int, "host-key-checking": bool,
               "use-internal-ip": bool})
IMAGE = Struct({Required("name"): str, "username": str, **IMAGE_CONNECTION})
PROVIDER = Struct({**PROVIDER_COMMON, **CLOUD_PROVIDER_COMMON,
                   "rate": Rate(),
                   # Seconds, 0 or more: the same finite-number rule.
                   "create-latency": Rate(),
                   "boot-time": Rate(),
                   "max-servers": Int,
                   "cloud-images": ListOf(IMAGE),
                   Required("pools"): ListOf(POOL)})


def check(raw: dict, path: Path, ctx: CheckContext) -> list[Issue]:
    return common.check_cloud_provider(raw, path, ctx,
                                       label_diskimage_scope="provider")


def _pool(raw: dict, pool: dict, images: dict) -> Pool:
    labels = common.by_name(pool["labels"], lambda label: PoolLabel(
        name=label["name"], cloud_image=label["cloud-image"], diskimage=None,
        image=images.get(label["cloud-image"]),
        settings={"cores": label.get("cores", 1),
                  "ram": label.get("ram", 1024),
                  "host-key-checking": label.get("host-key-checking")}))
    return Pool(
        name=pool["name"], provider_name=raw["name"],
        max_servers=common.limit(pool, "max-servers"),
        max_cores=common.limit(pool, "max-cores"),
        max_ram=common.limit(pool, "max-ram"),
        priority=common.pool_priority(pool, raw),
        node_attributes=common.node_attributes(pool),
        labels=labels,
        settings={"host-key-checking": pool.get("host-key-checking", False),
                  "use-internal-ip": pool.get("use-internal-ip", False)})


def build(raw: dict, ctx: BuildContext) -> Provider:
    images = common.by_name(raw.get("cloud-images", []),
                            lambda image: common.cloud_image(image, {}))
    return Provider(
        **common.provider_base(raw), **common.cloud_timeouts(raw, 60),
        rate=float(raw.get("rate", 0)),
        cloud_images=images,
        pools=common.by_name(raw["pools"],
                             lambda pool: _pool(raw, pool, images)),
        settings={"create-latency": float(raw.get("create-latency", 0)),
                  "boot-time": float(raw.get("boot-time", 0)),
                  "max-servers": common.limit(raw, "max-servers")})


DRIVER = DriverSchema(name="fake", schema=PROVIDER, loader_only=(),
                      check=check, build=build)
