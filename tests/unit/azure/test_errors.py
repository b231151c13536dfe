"""ARM answers → framework exceptions (codes first, status as fallback)."""

from __future__ import annotations

import email.utils

import pytest
from azure.core.exceptions import (ClientAuthenticationError,
                                   ServiceRequestError, ServiceResponseError)

from nodepool.driver import errors
from nodepool.driver.azure.errors import CREATE, OTHER, classify, retry_after
from tests.unit.azure.conftest import arm_error


def test_429_is_throttled_with_retry_after():
    error = classify(arm_error(429, "TooManyRequests",
                               headers={"Retry-After": "7"}))
    assert isinstance(error, errors.ThrottledError)
    assert error.retry_after == 7.0


def test_retry_after_as_http_date():
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    exc = arm_error(429, "TooManyRequests", headers={"Retry-After": when})
    assert retry_after(exc, now=1_000_000.0) == pytest.approx(30.0)
    assert retry_after(arm_error(429, "TooManyRequests")) is None


@pytest.mark.parametrize("status,code,details,message", [
    (409, "OperationNotAllowed", (), "results in exceeding approved "
     "standardDSv3Family Cores quota"),
    (409, "QuotaExceeded", (), "x"),
    (400, "BadRequest", ("QuotaExceeded",), "x"),
    (400, "PublicIPCountLimitReached", (), "x"),
])
def test_quota_errors(status, code, details, message):
    error = classify(arm_error(status, code, message, list(details)),
                     kind=CREATE)
    assert type(error) is errors.QuotaError
    assert error.stat_key == "error.quota"


def test_operation_not_allowed_without_quota_is_not_quota():
    error = classify(arm_error(409, "OperationNotAllowed",
                               "VM is marked for deletion"), kind=CREATE)
    assert type(error) is errors.LaunchError


def test_capacity():
    assert type(classify(arm_error(409, "AllocationFailed"))) is \
        errors.CapacityError
    assert type(classify(arm_error(409, "SkuNotAvailable"))) is \
        errors.CapacityError


@pytest.mark.parametrize("status,code", [
    (400, "InvalidParameter"), (404, "ResourceGroupNotFound"),
    (404, "GalleryImageNotFound"), (404, "NotFound"),
    (400, "InvalidResourceReference"), (403, "AuthorizationFailed")])
def test_bad_requests_are_configuration_errors_on_create(status, code):
    error = classify(arm_error(status, code), kind=CREATE)
    assert type(error) is errors.ConfigurationError
    assert error.stat_key == "error.config"


def test_not_found_elsewhere():
    assert type(classify(arm_error(404, "ResourceNotFound"), kind=OTHER)) \
        is errors.NotFoundError
    assert type(classify(arm_error(404, "ResourceGroupNotFound"))) is \
        errors.NotFoundError


@pytest.mark.parametrize("status,code", [
    (500, "InternalServerError"), (503, None), (502, "Whatever"),
    (409, "AnotherOperationInProgress"),
    (400, "ReferencedResourceNotProvisioned")])
def test_transient(status, code):
    assert type(classify(arm_error(status, code), kind=CREATE)) is \
        errors.TransientError


def test_connection_failures():
    # nothing sent (refused, unknown host): the endpoint is unreachable
    assert type(classify(ServiceRequestError("refused"))) is \
        errors.EndpointError
    assert type(classify(ServiceResponseError("reset"))) is \
        errors.TransientError


def test_auth_failure_and_unknown():
    assert type(classify(ClientAuthenticationError("bad secret"))) is \
        errors.CredentialError
    assert type(classify(arm_error(401, "InvalidAuthenticationToken"))) is \
        errors.CredentialError
    assert type(classify(arm_error(401, "InvalidAuthenticationTokenTenant"),
                         kind=CREATE)) is errors.CredentialError
    assert type(classify(ValueError("bug"))) is errors.LaunchError
    assert type(classify(arm_error(400, "NicInUse"))) is errors.LaunchError


def test_framework_errors_pass_through():
    original = errors.QuotaError("q")
    assert classify(original) is original


def test_message_names_the_call():
    assert str(classify(arm_error(500, "InternalServerError", "boom"),
                        "PUT vms")).startswith("PUT vms: ")
