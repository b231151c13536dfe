"""openstacksdk / keystoneauth errors → framework exceptions.

The launcher branches on exception classes only, so every failure the
OpenStack driver sees passes through ``classify`` once.  Unlike EC2,
OpenStack APIs carry no machine-readable error code: Nova answers both a
policy refusal and an exhausted quota with HTTP 403, Cinder uses 413 for
quota and Nova used 413 for rate limits.  So the HTTP status decides first
and, only where a status is ambiguous, the message is matched against the
small fixed set of phrases Nova, Cinder and Neutron use for quota
(``QUOTA_PHRASES``).  That matching happens here and nowhere else.

    status / exception           framework class      launcher effect
    401, Unauthorized,           CredentialError      whole provider backs
      AuthorizationFailure                              off (AccessGate)
    ConnectFailure/Timeout,      EndpointError        whole provider backs
      SSLError, EndpointNotFound,                       off (AccessGate)
      DiscoveryFailure
    403/409/413 + quota phrase   QuotaError           node aborted, retried
    429, 413 without quota       ThrottledError       limiter slows down
    404                          NotFoundError        delete: done
    409, 5xx, other connection   TransientError       step repeated later
      errors
    other 4xx, anything else     LaunchError          attempt failed

A server that ends in ERROR is judged by ``fault_error``: a fault naming a
quota (Nova learns about volume quota only while building) aborts the node,
"No valid host was found" is a ``CapacityError`` (the offering is marked
unavailable), any other fault is a failed attempt (``error.status``).
"""

from __future__ import annotations

from typing import Any, Mapping

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from nodepool.driver import errors

__all__ = ["classify", "fault_error", "is_quota_message", "QUOTA_PHRASES"]

# Lower-case phrases of quota refusals: Nova ("Quota exceeded for cores"),
# Cinder ("VolumeLimitExceeded", "exceeds allowed gigabytes quota"),
# Neutron ("Quota exceeded for resources: ['floatingip']") and Nova's
# build-time faults that wrap them.
QUOTA_PHRASES = ("quota exceeded", "limitexceeded", "exceeds allowed",
                 "exceeded for quota", "over quota", "overquota")
# Nova's scheduler found no compute host for the flavor in the zone: the
# cloud's capacity, not ours (NoValidHost, "No valid host was found").
CAPACITY_PHRASES = ("no valid host was found", "novalidhost")


# The endpoint cannot be reached at all (refused, no route, bad
# certificate, not in the catalog): every call would fail alike.
# DiscoveryFailure: keystoneauth found no usable identity API at auth_url.
_UNREACHABLE = (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                ks_exc.SSLError, ks_exc.EndpointNotFound,
                ks_exc.DiscoveryFailure)


def is_quota_message(text: str | None) -> bool:
    lowered = (text or "").lower()
    return any(phrase in lowered for phrase in QUOTA_PHRASES)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _status(exc: BaseException) -> int:
    for attr in ("status_code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return 0


def classify(exc: BaseException, operation: str = "") -> errors.DriverError:
    """The framework exception for an SDK failure of ``operation``.

    Framework exceptions pass through unchanged; raise the result with
    ``raise classify(e, "create server") from e``.
    """
    if isinstance(exc, errors.DriverError):
        return exc
    what = f"{operation}: {exc}" if operation else str(exc)
    if isinstance(exc, (ks_exc.Unauthorized, ks_exc.AuthorizationFailure)):
        return errors.CredentialError(what)
    if isinstance(exc, _UNREACHABLE):
        return errors.EndpointError(what)
    if isinstance(exc, (ks_exc.ConnectionError,
                        ks_exc.RetriableConnectionFailure)):
        return errors.TransientError(what)
    if isinstance(exc, (sdk_exc.HttpException, ks_exc.HttpError)):
        return _classify_http(exc, what)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return errors.TransientError(what)
    return errors.LaunchError(what, stat_key="error.unknown")


def _classify_http(exc: BaseException, what: str) -> errors.DriverError:
    status = _status(exc)
    details = f"{getattr(exc, 'details', '') or ''} {exc}"
    if status == 401:
        return errors.CredentialError(what)
    if status in (403, 409, 413) and is_quota_message(details):
        return errors.QuotaError(what)
    if status in (413, 429):
        return errors.ThrottledError(what, retry_after=_retry_after(exc))
    if status == 404:
        return errors.NotFoundError(what)
    if status == 409 or status >= 500 or status == 0:
        return errors.TransientError(what)
    return errors.LaunchError(what, stat_key="error.unknown")


def fault_error(server: Mapping[str, Any]) -> errors.DriverError:
    """The error for a server Nova put into ERROR, from its ``fault``."""
    fault = server.get("fault") or {}
    message = fault.get("message") or "no fault given"
    what = (f"server {server.get('id')} went to ERROR: {message} "
            f"(code {fault.get('code')})")
    if is_quota_message(message):
        return errors.QuotaError(what)
    if any(p in message.lower() for p in CAPACITY_PHRASES):
        return errors.CapacityError(what)
    return errors.LaunchError(what, stat_key="error.status")
