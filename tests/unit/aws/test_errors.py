"""EC2 error codes → framework exceptions."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError, EndpointConnectionError, NoCredentialsError,
    ParamValidationError)

from nodepool.driver import errors
from nodepool.driver.aws.errors import classify


def client_error(code: str, status: int = 400, headers=None) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status,
                                             "HTTPHeaders": headers or {}}},
                       "RunInstances")


@pytest.mark.parametrize("code,status,cls", [
    ("RequestLimitExceeded", 503, errors.ThrottledError),
    ("InsufficientInstanceCapacity", 500, errors.CapacityError),
    ("VcpuLimitExceeded", 400, errors.QuotaError),
    ("InstanceLimitExceeded", 400, errors.QuotaError),
    ("MaxSpotInstanceCountExceeded", 400, errors.CapacityError),
    ("InsufficientHostCapacity", 500, errors.CapacityError),
    ("InsufficientFreeAddressesInSubnet", 400, errors.CapacityError),
    ("Unsupported", 400, errors.CapacityError),
    ("InvalidAMIID.NotFound", 400, errors.ConfigurationError),
    ("InvalidInstanceType", 400, errors.ConfigurationError),
    ("InvalidParameterValue", 400, errors.ConfigurationError),
    ("InvalidInstanceID.NotFound", 400, errors.NotFoundError),
    ("InvalidVolume.NotFound", 400, errors.NotFoundError),
    ("InternalError", 500, errors.TransientError),
    ("SomethingNew", 502, errors.TransientError),
    ("SomethingNew", 400, errors.LaunchError),
])
def test_codes(code, status, cls):
    error = classify(client_error(code, status), "RunInstances")
    assert type(error) is cls
    assert "RunInstances" in str(error)


def test_capacity_is_a_quota_error_with_its_own_stat():
    error = classify(client_error("InsufficientInstanceCapacity", 500))
    assert isinstance(error, errors.QuotaError)
    assert error.stat_key == "error.capacity"


def test_retry_after_header_is_kept():
    error = classify(client_error("RequestLimitExceeded", 503,
                                  {"retry-after": "2"}))
    assert error.retry_after == 2.0


def test_unreachable_endpoint_is_an_access_error():
    error = classify(EndpointConnectionError(endpoint_url="http://x"))
    assert type(error) is errors.EndpointError


@pytest.mark.parametrize("code", ["AuthFailure", "InvalidClientTokenId",
                                  "SignatureDoesNotMatch",
                                  "UnrecognizedClientException"])
def test_refused_credentials_are_access_errors(code):
    assert type(classify(client_error(code, 401))) is errors.CredentialError


def test_an_action_refused_to_the_principal_is_not_an_access_error():
    # The key works; only this action is not allowed (an IAM policy).
    error = classify(client_error("UnauthorizedOperation", 403))
    assert type(error) is errors.ConfigurationError


def test_framework_errors_pass_through():
    original = errors.QuotaError("q")
    assert classify(original) is original


def test_local_setup_errors_are_configuration_errors():
    for exc in (ParamValidationError(report="bad"), NoCredentialsError()):
        assert isinstance(classify(exc), errors.ConfigurationError)
