"""OpenStackApi: one openstacksdk connection, rate limited and classified.

Configuration comes from ``clouds.yaml`` exactly as openstacksdk finds it
(``OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``, ``~/.config/openstack``,
``/etc/openstack``): the provider names an entry with ``cloud`` and may pick
a region with ``region-name``.  An unknown cloud or region fails in the
constructor, so the provider fails to start (config.md §9) instead of every
launch failing later.

Rate: the provider's ``rate`` is *seconds between calls* (config.md §5);
the limiters run at ``1/rate`` calls per second (``rate: 0`` = unlimited).
Mutating calls (create, delete, floating IPs, metadata) share the write
limiter at exactly that rate.  Read calls get ten times the budget on their
own limiter, as for AWS: the driver already batches its polling (one server
list for all nodes in flight), and a status poll must never eat the budget
that creates need.

Failure story: every call goes through ``read``/``write``, which run it in
``LimitedApi``'s loop (``nodepool.driver.limitedapi``, the one layer where
throttles and transient errors are handled): SDK and keystoneauth
exceptions become framework exceptions (``errors.classify``), a 429 is
reported to the limiter once (AIMD, Retry-After honoured) and the call is
sent again until ``throttle_deadline`` (minutes); a 5xx or a dropped
connection is sent again up to ``transient_attempts`` times, except a
``POST`` to Nova (``compute(..., write=True)`` creating a server), which
may have made the server before the answer was lost: its caller gets the
``TransientError`` at once.  keystoneauth retries nothing by itself (its
``connect_retries`` and ``status_code_retries`` stay 0), so every answer
reaches the limiter.  A refused password or an
unreachable Keystone/endpoint is an ``AccessError``: the provider's
``AccessGate`` then holds every call (and so every token request) back
with one exponential back-off, and logs it once.  Nothing touches
``conn.<service>`` outside a call: the first access authenticates.  The
connection is made on first use, on a worker thread, never on the
provider loop; keystoneauth re-authenticates by itself when a token
expires.  The HTTP connection pool
is sized for every worker thread, so concurrent creates never queue for a
socket.

Threads: any; the connection is made once under ``_lock``, the counters
are ``LimitedApi``'s; calls block, so they run on worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

from nodepool.driver.backoff import AccessGate
from nodepool.driver.limitedapi import (READ_RATE_FACTOR, THROTTLE_DEADLINE,
                                       LimitedApi)
from nodepool.driver.openstack.errors import classify
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["OpenStackApi", "READ_FACTOR", "calls_per_second"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# keystoneauth warns on every failed version discovery of an unreachable
# auth_url; the provider's AccessGate already says so once, with counts.
logging.getLogger("keystoneauth.identity.generic.base").setLevel(
    logging.ERROR)

#: read calls may run this many times faster than mutating calls
READ_FACTOR = READ_RATE_FACTOR
#: the newest compute microversion the driver asks for: 2.47 embeds the
#: flavor in server records, 2.37 requires ``networks`` on create
COMPUTE_MICROVERSION = "2.52"


def calls_per_second(rate_seconds: float | None) -> float:
    """The limiter rate for OpenStack's ``rate`` (seconds between calls)."""
    if not rate_seconds or rate_seconds <= 0:
        return 0.0
    return 1.0 / float(rate_seconds)


def load_cloud_region(cloud: str, region: str | None):
    """The openstacksdk CloudRegion for a clouds.yaml entry."""
    from openstack.config import OpenStackConfig
    return OpenStackConfig().get_one(cloud=cloud, region_name=region)


class OpenStackApi(LimitedApi):
    """Calls to one cloud region; thread-safe."""

    def __init__(self, name: str, cloud_region, rate_seconds: float,
                 max_connections: int = 32,
                 connect: Callable[[Any], Any] | None = None,
                 access: AccessGate | None = None, *,
                 transient_attempts: int = 3,
                 throttle_deadline: float = THROTTLE_DEADLINE,
                 backoff: float = 0.5, max_backoff: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(name, calls_per_second(rate_seconds),
                         write_limiter="write",
                         throttle_deadline=throttle_deadline,
                         transient_attempts=transient_attempts,
                         backoff=backoff, max_backoff=max_backoff,
                         sleep=sleep, clock=clock, access=access)
        self.cloud_region = cloud_region
        self.max_connections = max_connections
        self._connect = connect or self._default_connect
        self._conn = None
        self._microversion: str | None = None
        self._conn_lock = threading.Lock()

    @property
    def region(self) -> str | None:
        return self.cloud_region.region_name

    @property
    def cloud(self) -> str | None:
        return self.cloud_region.name

    # -- connection ----------------------------------------------------
    def _default_connect(self, cloud_region):
        import openstack.connection
        from keystoneauth1.session import TCPKeepAliveAdapter
        conn = openstack.connection.Connection(config=cloud_region)
        for scheme in ("http://", "https://"):
            conn.session.mount(scheme, TCPKeepAliveAdapter(
                pool_connections=4, pool_maxsize=self.max_connections))
        return conn

    @property
    def conn(self):
        with self._conn_lock:
            if self._conn is None:
                self._conn = self._connect(self.cloud_region)
            return self._conn

    def compute_microversion(self) -> str | None:
        """The compute microversion to send (None: the server has none)."""
        if self._microversion is None:
            from openstack import utils
            # ``conn.compute`` authenticates: inside the call, so that a
            # refused password is classified and backs off like any call.
            version = self.read(
                "compute version discovery",
                lambda: utils.maximum_supported_microversion(
                    self.conn.compute, COMPUTE_MICROVERSION))
            self._microversion = version or ""
        return self._microversion or None

    def close(self) -> None:
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing is best effort
                log.debug("closing connection of %s failed", self.name,
                          exc_info=True)

    # -- calls (LimitedApi's loop) -------------------------------------------
    def read(self, operation: str, fn: Callable[..., T], *args: Any,
             **kw: Any) -> T:
        return self._call(self.read_limiter, operation, fn, args, kw)

    def write(self, operation: str, fn: Callable[..., T], *args: Any,
              idempotent: bool = True, **kw: Any) -> T:
        """A mutating call; ``idempotent`` False: never repeated after a
        transient error (a throttle still is: nothing was done)."""
        return self._call(self.limiter, operation, fn, args, kw,
                          idempotent=idempotent)

    def _call(self, limiter: RateLimiter, operation: str, fn, args, kw,
              idempotent: bool = True):
        return self._retrying(limiter, operation, lambda: fn(*args, **kw),
                              lambda exc: classify(exc, operation),
                              idempotent=idempotent)

    # -- raw compute calls (JSON in, JSON out) --------------------------------
    def compute(self, method: str, path: str, *, write: bool,
                operation: str, **kw: Any) -> Any:
        """One compute API call at our microversion; the decoded body."""
        from openstack import exceptions as sdk_exc
        microversion = self.compute_microversion()

        def send():
            response = self.conn.compute.request(
                path, method, microversion=microversion, **kw)
            sdk_exc.raise_from_response(response)
            return response.json() if response.content else None

        if write:
            # A POST makes something (a server): after a lost answer the
            # cloud may have made it, so only a throttle repeats it.
            return self.write(operation, send, idempotent=method != "POST")
        return self.read(operation, send)

    def get_json(self, service: str, path: str, *, operation: str,
                 **kw: Any) -> Any:
        """A read of any service (``block_storage``, ``network``...)."""
        from openstack import exceptions as sdk_exc

        def send():
            response = getattr(self.conn, service).get(path, **kw)
            sdk_exc.raise_from_response(response)
            return response.json() if response.content else None

        return self.read(operation, send)

    def list_servers(self, **filters: Any) -> list[dict]:
        """Every server record (``servers/detail``), following pages."""
        servers: list[dict] = []
        params = dict(filters)
        while True:
            body = self.compute("GET", "/servers/detail", write=False,
                                operation="list servers", params=params)
            page = body.get("servers") or []
            servers.extend(page)
            if not body.get("servers_links") or not page:
                return servers
            params = dict(filters, marker=page[-1]["id"])
