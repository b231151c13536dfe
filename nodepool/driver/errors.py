"""Framework exceptions: the only errors the launcher core branches on.

An adapter turns whatever its SDK raises into one of these classes, and the
core decides retry, abort or decline from the class alone, never from the
message text.  Anything else escaping an adapter is an unclassified failure
(``error.unknown``) of the attempt it happened in.

    DriverError              root; .stat_key names the launch-result stat
    ├── NotFoundError        the resource is gone; for a delete, success
    ├── QuotaError           quota exceeded: node ABORTED, request retried
    │   └── CapacityError    the cloud has no capacity: aborted as well
    ├── ThrottledError       the cloud said "slow down"; .retry_after seconds
    ├── TransientError       5xx, timeouts, resets: LimitedApi retries
    │   └── Unfulfilled      a batch call started fewer than asked: at once
    ├── AccessError          the provider cannot use its cloud at all:
    │   │                    every call backs off (``backoff.AccessGate``)
    │   ├── CredentialError  credentials or token refused (401, AuthFailure)
    │   └── EndpointError    the endpoint cannot be reached (refused, DNS)
    ├── LaunchError          this launch attempt failed for good; .stat_key
    └── ConfigurationError   the label can never be served here: decline

One retry policy, one layer per error:

- ``API_RETRIED`` (``ThrottledError``, ``TransientError``) are handled
  ONLY by ``limitedapi.LimitedApi``, the rate-limited call helper every
  driver's API goes through: it repeats a throttled call, paced by the
  limiter, until a deadline, and a transient failure of an idempotent call
  with back-off, a bounded number of times.  One that reaches a caller is
  final for that call: a machine fails its attempt with it.
- ``WAIT_FOR_ACCESS`` (``AccessError``) is no throttle or transient error:
  the provider's ``AccessGate`` (``backoff.py``) is its one layer, holding
  every call back; a machine waits for the gate and sends its call again.

Everything else fails the attempt.
"""

from __future__ import annotations

__all__ = [
    "DriverError",
    "NotFoundError",
    "QuotaError",
    "CapacityError",
    "ThrottledError",
    "TransientError",
    "Unfulfilled",
    "AccessError",
    "CredentialError",
    "EndpointError",
    "LaunchError",
    "ConfigurationError",
    "API_RETRIED",
    "WAIT_FOR_ACCESS",
]


class DriverError(Exception):
    """Root of every classified driver failure.

    ``stat_key`` is the ``nodepool.launch.<result>`` suffix the launcher emits
    when this error ends a launch attempt; subclasses set their own default
    and a caller may override it per instance.
    """

    stat_key: str = "error.unknown"

    def __init__(self, message: str = "", *, stat_key: str | None = None) -> None:
        super().__init__(message)
        if stat_key is not None:
            self.stat_key = stat_key


class NotFoundError(DriverError):
    """The resource does not exist (any more); deletes treat this as done."""


class QuotaError(DriverError):
    """The cloud refused because a quota is exhausted.

    Not the launch's fault: the node is marked ABORTED and the request is
    retried, usually by a pool that now knows it is at quota.
    """

    stat_key = "error.quota"


class CapacityError(QuotaError):
    """The cloud lacks capacity for this instance type or zone right now."""

    stat_key = "error.capacity"


class ThrottledError(DriverError):
    """The cloud rate-limited us.

    ``retry_after`` is the wait the cloud asked for in seconds, or None when
    it gave none; feed it to ``RateLimiter.throttled`` so every caller of
    that limiter slows down, not just the one that was refused.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None,
                 stat_key: str | None = None) -> None:
        super().__init__(message, stat_key=stat_key)
        self.retry_after = retry_after


class TransientError(DriverError):
    """A failure that may well succeed if the same call is repeated later."""


class Unfulfilled(TransientError):
    """A batched create call started fewer instances than it asked for
    (EC2 launches "as many as it can") and this launch got none.

    Not a failure, and not a reason to wait: the launch is sent again at
    once, within the rate limiter, and the batcher sends smaller calls for
    that specification while the cloud keeps answering partially.
    """


class AccessError(DriverError):
    """Nothing the provider asks its cloud can work right now.

    Unlike a ``TransientError`` this is not about one call: the next call
    of any kind would fail the same way, so the provider's ``AccessGate``
    holds all of them back with an exponential back-off (up to a minute)
    and logs the failure once.  ``kind`` names it in the log.
    """

    kind = "cloud unreachable"


class CredentialError(AccessError):
    """The cloud (or its identity service) refused our credentials."""

    kind = "credentials refused"


class EndpointError(AccessError):
    """The cloud's endpoint could not be reached (connection refused,
    unknown host, no route, endpoint missing from the catalog)."""

    kind = "endpoint unreachable"


class LaunchError(DriverError):
    """One launch attempt failed permanently (e.g. the instance went to ERROR).

    The launcher counts it against ``launch-retries``; ``stat_key`` says why,
    e.g. ``LaunchError("instance error", stat_key="error.status")``.
    """


class ConfigurationError(DriverError):
    """The label can never be served by this provider (e.g. unknown instance
    type or image); pools decline the request instead of retrying."""


#: handled only in LimitedApi; final for the call once raised from it
API_RETRIED: tuple[type[DriverError], ...] = (ThrottledError, TransientError)
#: handled only by the provider's AccessGate: a machine waits for it
WAIT_FOR_ACCESS: tuple[type[DriverError], ...] = (AccessError,)