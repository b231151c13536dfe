"""boto errors → framework exceptions, by EC2 error code.

The launcher branches on exception classes only (``nodepool.driver.errors``),
so every botocore failure the AWS driver sees passes through ``classify``
exactly once.  The EC2 error *code* decides, never the message text; the
HTTP status is only the fallback for codes this table does not know
(5xx: transient, anything else: the attempt failed).

Codes that name a bad request (unknown AMI, instance type, subnet, ...) are
``ConfigurationError`` for the launch calls: retrying the same label cannot
help, so the node fails at once instead of burning ``launch-retries``.
Capacity and quota codes abort the node (request retried later, behaviour
14).  ``RequestLimitExceeded`` and friends are ``ThrottledError``: callers
report them to their RateLimiter, which slows every thread down.

Credential codes (``AuthFailure``, ``InvalidClientTokenId``,
``SignatureDoesNotMatch``...) and connection failures that reach no
endpoint (``EndpointConnectionError``) are ``AccessError``s: the
provider's ``AccessGate`` backs every call off together and logs it once.

Note that EC2 answers ``InsufficientInstanceCapacity`` with HTTP 500, so
codes are always checked before the status.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError, ClientError, ConnectionError as BotoConnectionError,
    ConnectTimeoutError, EndpointConnectionError, NoCredentialsError,
    NoRegionError, ParamValidationError, PartialCredentialsError,
    ProfileNotFound, ReadTimeoutError, SSLError)

from nodepool.driver import errors

__all__ = ["classify", "error_code", "THROTTLE_CODES", "CAPACITY_CODES",
           "QUOTA_CODES", "CONFIG_CODES", "TRANSIENT_CODES",
           "CREDENTIAL_CODES"]

# The account's credentials (or the signature made with them) were refused:
# every call of the provider fails alike, so all of them back off together
# (``CredentialError``, ``nodepool.driver.backoff``).  Not
# UnauthorizedOperation: the key was accepted and only that action is not
# allowed to its principal (e.g. no ec2:DescribeImportSnapshotTasks), so
# holding every other call back would stop what does work.
CREDENTIAL_CODES = frozenset({
    "AuthFailure", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "UnrecognizedClientException",
    "IncompleteSignature", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "InvalidAccessKeyId", "MissingAuthenticationToken",
})

THROTTLE_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException",
    "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "SlowDown", "EC2ThrottledException",
})

# The cloud has no room for this instance type/zone right now.
CAPACITY_CODES = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity", "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet", "InsufficientAddressCapacity",
    "SpotMaxPriceTooLow", "InsufficientCapacityOnHost",
    # The type is not offered in this zone (another zone may have it), and
    # the account's spot pool is full for now: both are about the offering.
    "Unsupported", "MaxSpotInstanceCountExceeded",
})

# An account limit: the operator must raise a quota or free resources.
QUOTA_CODES = frozenset({
    "VcpuLimitExceeded", "InstanceLimitExceeded",
    "VolumeLimitExceeded",
    "MaxIOPSLimitExceeded", "HostLimitExceeded", "AddressLimitExceeded",
    "ResourceLimitExceeded", "ServiceQuotaExceededException",
    "InstanceCreditLimitExceeded",
})

# The request itself is wrong for this account/region: no retry helps.
CONFIG_CODES = frozenset({
    "InvalidAMIID.NotFound", "InvalidAMIID.Malformed",
    "InvalidAMIID.Unavailable", "InvalidInstanceType",
    "InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed",
    "InvalidGroup.NotFound", "InvalidGroupId.Malformed",
    "InvalidKeyPair.NotFound", "InvalidParameterValue",
    "InvalidParameterCombination", "InvalidParameter",
    "InvalidBlockDeviceMapping", "InvalidIamInstanceProfile",
    "InvalidPlacementGroup.Unknown", "InvalidUserData.Malformed",
    "UnsupportedOperation", "UnauthorizedOperation",
    "OptInRequired", "MissingParameter",
    "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFound",
})

TRANSIENT_CODES = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
    "RequestTimeout", "RequestTimeoutException",
    "ServiceUnavailableException",
})


_LOCAL_CONFIG_ERRORS = (ParamValidationError, NoCredentialsError,
                        PartialCredentialsError, NoRegionError,
                        ProfileNotFound)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError, else None."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {})
               .get("HTTPStatusCode") or 0)


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(exc: BaseException, operation: str = "") -> errors.DriverError:
    """The framework exception for a boto failure of ``operation``.

    The result has the boto exception as ``__cause__``; raise it with
    ``raise classify(e) from e``.  Framework exceptions pass through.
    """
    if isinstance(exc, errors.DriverError):
        return exc
    what = f"{operation}: {exc}" if operation else str(exc)
    if isinstance(exc, ClientError):
        return _classify_client_error(exc, what)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError,
                        SSLError)):
        # Could not connect at all (the proxy's errors are connection
        # errors too): the endpoint is unreachable for every call.
        return errors.EndpointError(what)
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError)):
        return errors.TransientError(what)
    if isinstance(exc, _LOCAL_CONFIG_ERRORS):
        # Raised before anything was sent: the request or the local AWS
        # setup is wrong, and repeating it cannot help.
        return errors.ConfigurationError(what, stat_key="error.config")
    if isinstance(exc, BotoCoreError):
        return errors.TransientError(what)
    return errors.LaunchError(what)


def _classify_client_error(exc: ClientError, what: str
                           ) -> errors.DriverError:
    code = error_code(exc) or ""
    if code in CREDENTIAL_CODES:
        return errors.CredentialError(what)
    if code in THROTTLE_CODES:
        return errors.ThrottledError(what, retry_after=_retry_after(exc))
    if code in CAPACITY_CODES:
        return errors.CapacityError(what)
    if code in QUOTA_CODES:
        return errors.QuotaError(what)
    if code in CONFIG_CODES:
        return errors.ConfigurationError(what, stat_key="error.config")
    if code.endswith(".NotFound") or code in (
            "NoSuchResourceException", "ResourceNotFoundException"):
        return errors.NotFoundError(what)
    if code in TRANSIENT_CODES or _status(exc) >= 500:
        return errors.TransientError(what)
    return errors.LaunchError(what, stat_key="error.unknown")
