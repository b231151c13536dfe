"""Which unreadable requests a pool worker declines
(nodepool/launcher/unreadable.py)."""

from __future__ import annotations

import pytest

from nodepool.launcher.unreadable import addressed_to

ME = "host-PoolWorker.aws-main-abc"
LABELS = {"small", "large"}


def addressed(payload, others=()):
    return addressed_to(payload, ME, "aws", LABELS, others)


@pytest.mark.parametrize("payload", [
    {"state": "requested", "node_types": ["small"],
     "relative_priority": "high"},
    {"state": "requested", "node_types": "small"},
    {"state": "requested", "node_types": [{"a": 1}, "large"]},
    {"state": "requested", "provider": "aws", "node_types": [{"a": 1}]},
    {"state": "requested", "provider": "aws", "declined_by": "junk"},
    {"state": "requested", "provider": ["aws"], "node_types": ["small", 5]},
])
def test_requests_naming_our_labels_or_provider_are_ours(payload):
    assert addressed(payload)


@pytest.mark.parametrize("payload", [
    {"state": "pending", "node_types": ["small"], "reuse": "x"},
    {"state": "fulfilled", "node_types": ["small"], "reuse": "x"},
    {"state": ["requested"], "node_types": ["small"]},
    {"node_types": ["small"], "reuse": "x"},
    {"state": "requested", "node_types": [{"a": 1}, None, 5]},
    {"state": "requested", "node_types": "smallish"},
    {"state": "requested", "node_types": ["small"], "reuse": "x",
     "declined_by": [ME]},
])
def test_other_requests_are_not(payload):
    assert not addressed(payload)


def test_a_request_preferring_another_registered_provider_is_left_to_it():
    payload = {"state": "requested", "node_types": ["small"],
               "provider": "openstack", "reuse": "x"}
    assert not addressed(payload, others={"openstack"})
    # An unknown (unregistered) preferred provider is ignored (§8.2).
    assert addressed(payload, others={"azure"})
