"""AwsApi: every EC2 / Service Quotas call, rate limited and classified.

Two limiters per provider: ``limiter`` admits mutating calls (RunInstances,
TerminateInstances, CreateTags, DeleteVolume, ...) at the provider's
``rate`` per second; ``read_limiter`` admits Describe*/Get*/List* at ten
times that (EC2 meters the two classes separately and reads are the
cheaper bucket).  ``rate`` 0 leaves both unlimited.

botocore's own retries are switched off (one attempt per call): a hidden
retry would hide throttling from the limiter, which can then not slow the
other threads down.  Instead ``call`` retries in ``LimitedApi``'s loop,
the one layer where throttles and transient errors are handled (the
callers see only the final error and report nothing to a limiter):

- ``ThrottledError`` (RequestLimitExceeded): report ``limiter.throttled()``
  (the effective rate halves, AIMD) and retry after an exponential,
  jittered back-off, until ``throttle_deadline`` (minutes), then raise it;
- ``TransientError`` (5xx, dropped connections): retry up to
  ``transient_attempts`` times.  Every mutating call we make is idempotent
  (RunInstances carries a ClientToken, terminate/tag/delete are
  idempotent), so a repeat cannot double anything;
- anything else is raised at once, already classified;
- a success reports ``limiter.succeeded()`` so the rate recovers.

Threads: any; boto3 clients are thread-safe once created, and all of them
are created here, in the constructor, from one Session.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from nodepool.driver.aws.errors import classify
from nodepool.driver.backoff import AccessGate
from nodepool.driver.limitedapi import (READ_RATE_FACTOR, THROTTLE_DEADLINE,
                                       LimitedApi)
from nodepool.driver.ratelimit import RateLimiter

__all__ = ["AwsApi", "READ_RATE_FACTOR"]


class AwsApi(LimitedApi):
    """Clients plus limiters for one provider (see module docstring).

    ``session`` is a ``boto3.Session`` (its ``profile_name`` chosen by the
    caller); the endpoint comes from boto's normal configuration, so
    ``AWS_ENDPOINT_URL`` points the same code at a local AWS.
    """

    def __init__(self, name: str, session, region: str, rate: float,
                 max_connections: int = 10, *,
                 transient_attempts: int = 3,
                 throttle_deadline: float = THROTTLE_DEADLINE,
                 backoff: float = 0.25, max_backoff: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 clients: dict[str, Any] | None = None,
                 access: AccessGate | None = None):
        super().__init__(name, rate, write_limiter="mutate",
                         throttle_deadline=throttle_deadline,
                         transient_attempts=transient_attempts,
                         backoff=backoff, max_backoff=max_backoff,
                         sleep=sleep, clock=clock, access=access)
        self.region = region
        if clients is not None:
            self.ec2 = clients.get("ec2")
            self.quotas = clients.get("service-quotas")
            return
        config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                        max_pool_connections=max_connections,
                        connect_timeout=10, read_timeout=60)
        self.ec2 = session.client("ec2", region_name=region, config=config)
        self.quotas = session.client("service-quotas", region_name=region,
                                     config=config)

    # -- entry points ---------------------------------------------------------
    def mutate(self, operation: str, *, admitted: bool = False,
               background: bool = False, **params: Any) -> dict:
        """A mutating EC2 call through ``limiter``.

        ``admitted`` says the caller already took a limiter slot for the
        first attempt (the create batcher does, to collect more launches
        while it waits for its turn); ``background`` that no node waits
        for the call (the tagger's): it yields slots to those that do.
        """
        return self.call(self.limiter, getattr(self.ec2, operation),
                         operation, params, admitted=admitted,
                         background=background)

    def read(self, operation: str, client: Any = None, **params: Any
             ) -> dict:
        """A read-only call (EC2 unless ``client`` is given)."""
        client = client or self.ec2
        return self.call(self.read_limiter, getattr(client, operation),
                         operation, params)

    def read_pages(self, operation: str, key: str, client: Any = None,
                   **params: Any) -> list:
        """Every ``key`` item of a paginated read, each page rate limited."""
        items: list = []
        token_key = "NextToken"
        while True:
            page = self.read(operation, client, **params)
            items.extend(page.get(key, []))
            token = page.get(token_key)
            if not token:
                return items
            params = {**params, token_key: token}

    # -- the retry loop (LimitedApi's) ---------------------------------------
    def call(self, limiter: RateLimiter, fn: Callable[..., dict],
             operation: str, params: dict[str, Any], *,
             admitted: bool = False, background: bool = False) -> dict:
        """``fn(**params)`` with limiting, classification and retries."""
        def classify_boto(exc: Exception):
            if isinstance(exc, (ClientError, BotoCoreError)):
                return classify(exc, operation)
            return None
        return self._retrying(limiter, operation, lambda: fn(**params),
                              classify_boto, admitted=admitted,
                              background=background)

    def _throttle_pause(self, attempt: int, retry_after: float | None
                        ) -> None:
        # EC2 rarely names a Retry-After: back off at least that long.
        self._sleep(max(retry_after or 0.0, self._delay(attempt)))
