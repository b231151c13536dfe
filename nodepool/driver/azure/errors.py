"""Azure SDK errors → framework exceptions, by ARM error code and status.

The launcher branches on exception classes only (``nodepool.driver.errors``),
so every azure-core failure the Azure driver sees passes through
``classify`` exactly once, in ``AzureApi.call``.  The ARM error *code*
decides first, the HTTP status is the fallback:

- 429 (any code) is ``ThrottledError`` with the ``Retry-After`` seconds;
- quota codes are ``QuotaError`` and capacity codes ``CapacityError``: the
  node is aborted and the request retried (behaviour 14);
- codes that say the request itself is wrong (bad size, image, subnet,
  key, missing resource group) are ``ConfigurationError`` when a resource
  is being *created*: no retry can help that label;
- 404 elsewhere is ``NotFoundError`` (a delete then counts as done);
- 5xx, "another operation in progress" style conflicts and connection
  failures are ``TransientError``: every call we make is a PUT or DELETE
  by resource name, so repeating one cannot create anything twice;
- a refused secret or token (``ClientAuthenticationError``, 401) is a
  ``CredentialError`` and a request that could not be sent at all
  (``ServiceRequestError``: refused, unknown host) an ``EndpointError``:
  the provider's ``AccessGate`` backs every call off together;
- anything else fails the attempt (``LaunchError``).

One exception to "codes, never messages": ARM reports an exhausted quota
as ``409 OperationNotAllowed`` -- a code it also uses for unrelated
refusals (e.g. changing a VM that is being deleted).  Only there the
message is consulted, for the word "quota", and only after the error's
``details`` codes have been checked for a quota code.
"""

from __future__ import annotations

import email.utils
import time

from azure.core.exceptions import (
    AzureError, ClientAuthenticationError, HttpResponseError,
    ServiceRequestError, ServiceResponseError)

from nodepool.driver import errors

__all__ = ["classify", "error_code", "retry_after", "CREATE", "OTHER",
           "QUOTA_CODES", "CAPACITY_CODES", "CONFIG_CODES", "TRANSIENT_CODES"]

#: the kinds of call ``classify`` distinguishes
CREATE = "create"
OTHER = "other"

QUOTA_CODES = frozenset({
    "QuotaExceeded", "ResourceQuotaExceeded", "OperationNotAllowedQuota",
    "PublicIPCountLimitReached", "StandardSkuPublicIPCountLimitReached",
    "NetworkInterfaceCountLimitReached", "SubscriptionQuotaExceeded",
    "ResourceCountExceedsLimitDueToTemplate", "LimitExceeded",
})

CAPACITY_CODES = frozenset({
    "AllocationFailed", "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest", "SkuNotAvailable",
    "AllocationFailedVMSeriesNotSupported",
})

CONFIG_CODES = frozenset({
    "InvalidParameter", "InvalidRequestFormat", "InvalidRequestContent",
    "InvalidResourceReference", "ResourceGroupNotFound",
    "GalleryImageNotFound", "ImageNotFound", "PlatformImageNotFound",
    "LocationNotAvailableForResourceType", "InvalidTemplate",
    "AuthorizationFailed", "LinkedAuthorizationFailed",
    "SubscriptionNotFound", "InvalidSubscriptionId",
    "MissingSubscriptionRegistration", "NoRegisteredProviderFound",
    "MissingApiVersionParameter", "VMMarketplaceInvalidInput",
    "MarketplacePurchaseEligibilityFailed", "InvalidVMSize",
    "StandardSkuPublicIPAddressesMustBeStatic", "PublicIPAddressInUse",
    "InvalidAuthenticationTokenTenant", "BadRequest",
})

TRANSIENT_CODES = frozenset({
    "RetryableError", "AnotherOperationInProgress", "OperationPreempted",
    "InternalServerError", "InternalError", "ServerTimeout",
    "ServiceUnavailable", "GatewayTimeout", "NetworkingInternalOperationError",
    "ReferencedResourceNotProvisioned", "Conflict", "Canceled",
})

NOT_FOUND_CODES = frozenset({"NotFound", "ResourceNotFound"})


def error_code(exc: BaseException) -> str:
    """The ARM error code of an HttpResponseError ("" when it has none)."""
    error = getattr(exc, "error", None)
    return (getattr(error, "code", None) or "") if error is not None else ""


def _detail_codes(exc: BaseException) -> set[str]:
    error = getattr(exc, "error", None)
    return {getattr(d, "code", None) or ""
            for d in (getattr(error, "details", None) or [])}


def retry_after(exc: BaseException, now: float | None = None
                ) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _is_quota(exc: HttpResponseError, code: str) -> bool:
    if code in QUOTA_CODES or _detail_codes(exc) & QUOTA_CODES:
        return True
    message = getattr(getattr(exc, "error", None), "message", None) or ""
    return code == "OperationNotAllowed" and "quota" in message.lower()


def classify(exc: BaseException, what: str = "", kind: str = OTHER
             ) -> errors.DriverError:
    """The framework exception for an SDK failure of ``what``.

    ``kind`` is ``CREATE`` for calls that create a resource (their 400s and
    404s are configuration errors), else ``OTHER``.  Framework exceptions
    pass through unchanged.
    """
    if isinstance(exc, errors.DriverError):
        return exc
    text = f"{what}: {exc}" if what else str(exc)
    if isinstance(exc, ClientAuthenticationError):
        # The token request failed (no status), or ARM refused the token
        # (401): every call of the provider would, so all back off.
        return errors.CredentialError(text)
    if isinstance(exc, HttpResponseError) and exc.status_code:
        return _classify_response(exc, text, kind)
    if isinstance(exc, ServiceRequestError):
        # Nothing was sent: connection refused, unknown host, TLS failure.
        return errors.EndpointError(text)
    if isinstance(exc, ServiceResponseError):
        return errors.TransientError(text)
    if isinstance(exc, AzureError):
        return errors.TransientError(text)
    return errors.LaunchError(text)


def _classify_response(exc: HttpResponseError, text: str, kind: str
                       ) -> errors.DriverError:
    status = int(exc.status_code or 0)
    code = error_code(exc)
    if status == 429:
        return errors.ThrottledError(text, retry_after=retry_after(exc))
    if status == 401:
        return errors.CredentialError(text)
    if _is_quota(exc, code):
        return errors.QuotaError(text)
    if code in CAPACITY_CODES:
        return errors.CapacityError(text)
    if code in TRANSIENT_CODES or status >= 500:
        return errors.TransientError(text)
    if kind == CREATE and (code in CONFIG_CODES or status in (400, 403, 404)):
        return errors.ConfigurationError(text, stat_key="error.config")
    if status == 404 or code in NOT_FOUND_CODES:
        return errors.NotFoundError(text)
    return errors.LaunchError(text)
