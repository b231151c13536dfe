"""SDK errors → framework exceptions, from real SDK exception objects."""

from __future__ import annotations

import json

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from nodepool.driver import errors
from nodepool.driver.openstack.errors import (classify, fault_error,
                                              is_quota_message)


def sdk_error(status: int, body: dict | None = None,
              headers: dict | None = None) -> sdk_exc.SDKException:
    """The exception openstacksdk raises for an HTTP answer."""
    response = requests.Response()
    response.status_code = status
    response.headers.update({"Content-Type": "application/json",
                             **(headers or {})})
    response._content = json.dumps(body or {}).encode()
    response.url = "http://127.0.0.1/compute/v2.1/servers"
    try:
        sdk_exc.raise_from_response(response)
    except sdk_exc.SDKException as e:
        return e
    raise AssertionError("no exception raised")


@pytest.mark.parametrize("status,body,cls", [
    (403, {"forbidden": {"message": "Quota exceeded for cores: Requested 4,"
                                    " but already used 398 of 400 cores"}},
     errors.QuotaError),
    (413, {"overLimit": {"message": "VolumeLimitExceeded: Maximum number of "
                                    "volumes allowed (10) exceeded"}},
     errors.QuotaError),
    (409, {"NeutronError": {"type": "OverQuota", "message":
                            "Quota exceeded for resources: ['floatingip']."}},
     errors.QuotaError),
    (403, {"forbidden": {"message": "Policy doesn't allow this"}},
     errors.LaunchError),
    (429, {"message": "slow down"}, errors.ThrottledError),
    (413, {"overLimit": {"message": "This request was rate-limited."}},
     errors.ThrottledError),
    (404, {"itemNotFound": {"message": "Instance x could not be found."}},
     errors.NotFoundError),
    (409, {"conflictingRequest": {"message": "in task_state deleting"}},
     errors.TransientError),
    (500, {"computeFault": {"message": "Unexpected API Error"}},
     errors.TransientError),
    (503, {}, errors.TransientError),
    (400, {"badRequest": {"message": "Invalid key_name provided."}},
     errors.LaunchError),
])
def test_http_statuses(status, body, cls):
    error = classify(sdk_error(status, body), "create server")
    assert type(error) is cls
    assert str(error).startswith("create server: ")


def test_quota_is_a_quota_error_not_a_capacity_error():
    error = classify(sdk_error(403, {"forbidden": {
        "message": "Quota exceeded for instances"}}))
    assert error.stat_key == "error.quota"


def test_retry_after_is_read_from_the_answer():
    error = classify(sdk_error(429, {}, {"Retry-After": "7"}))
    assert isinstance(error, errors.ThrottledError)
    assert error.retry_after == 7.0


def test_unreachable_endpoints_are_access_errors():
    for exc in (ks_exc.ConnectFailure("refused"),
                ks_exc.ConnectTimeout("slow"),
                ks_exc.EndpointNotFound("no compute in the catalog"),
                ks_exc.DiscoveryFailure("no versioned identity endpoints")):
        assert type(classify(exc)) is errors.EndpointError
    assert type(classify(ks_exc.UnknownConnectionError("reset", None))) \
        is errors.TransientError


def test_refused_credentials_are_access_errors():
    error = classify(ks_exc.Unauthorized("requires authentication"),
                     "list flavors")
    assert type(error) is errors.CredentialError
    assert str(error).startswith("list flavors: requires authentication")
    assert type(classify(sdk_error(401, {}))) is errors.CredentialError
    assert issubclass(errors.CredentialError, errors.WAIT_FOR_ACCESS)


def test_framework_errors_pass_through_and_unknowns_fail_the_attempt():
    original = errors.QuotaError("x")
    assert classify(original) is original
    unknown = classify(ValueError("boom"))
    assert isinstance(unknown, errors.LaunchError)
    assert unknown.stat_key == "error.unknown"


def test_fault_error_quota_and_other():
    quota = fault_error({"id": "s1", "fault": {
        "message": "Build of instance s1 aborted: VolumeLimitExceeded: "
                   "Maximum number of volumes allowed (10) exceeded for "
                   "quota 'volumes'.", "code": 500}})
    assert isinstance(quota, errors.QuotaError)
    capacity = fault_error({"id": "s1", "fault": {
        "message": "No valid host was found. ", "code": 500}})
    assert type(capacity) is errors.CapacityError
    other = fault_error({"id": "s1", "fault": {"message": "Unexpected "
                                               "vif_type=binding_failed",
                                               "code": 500}})
    assert type(other) is errors.LaunchError
    assert other.stat_key == "error.status"
    bare = fault_error({"id": "s1"})
    assert "no fault given" in str(bare)


def test_quota_phrases():
    assert is_quota_message("Quota exceeded for ram")
    assert is_quota_message("exceeds allowed gigabytes quota")
    assert not is_quota_message("No valid host was found")
    assert not is_quota_message(None)
