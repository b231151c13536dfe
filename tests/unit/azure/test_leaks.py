"""Which side resources are leak candidates."""

from __future__ import annotations

from nodepool.driver.azure.leaks import attached, candidates

OURS = {"nodepool_provider_name": "azure", "nodepool_node_id": "1"}


def test_attachment_by_kind():
    assert attached("nics", {"properties": {"virtualMachine": {"id": "v"}}})
    assert not attached("nics", {"properties": {}})
    assert attached("pips", {"properties": {"ipConfiguration": {"id": "c"}}})
    assert not attached("pips", {"properties": {}})
    assert attached("disks", {"managedBy": "/vm", "properties": {}})
    assert attached("disks", {"properties": {"diskState": "Attached"}})
    assert not attached("disks", {"properties": {"diskState": "Unattached"}})


def test_candidates_are_ours_and_unattached():
    records = [
        {"name": "mine", "id": "/x/mine", "tags": OURS, "properties": {}},
        {"name": "busy", "tags": OURS,
         "properties": {"virtualMachine": {"id": "v"}}},
        {"name": "theirs", "tags": {"nodepool_provider_name": "other"},
         "properties": {}},
        {"name": "untagged", "tags": None, "properties": {}},
    ]
    [res] = candidates("nics", records, "azure")
    assert (res.type, res.id, res.node_id, res.provider_name,
            res.driver_data) == ("nics", "mine", "1", "azure", "/x/mine")
