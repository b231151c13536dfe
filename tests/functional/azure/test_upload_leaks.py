"""Leaked image uploads on Azure: managed images and upload disks.

The driver side of upstream's launcher leak cleanup against the local ARM:
``list_resources`` returns our provider's images (and upload disks) with
their tags, ``delete_resource`` deletes them, and upstream's rule
(``leakrule.py``) deletes exactly the uploads ZooKeeper does not know.
"""

from __future__ import annotations

import pytest

from nodepool.driver.instance import Resource
from tests.functional.azure.conftest import LOCATION, RG
from tests.functional.azure.helpers import adapter_of, wait_gone
from tests.functional.leakrule import (
    UpstreamLeakRule, upload_tags, write_upload)
from tools.fakeazure.store import resource_id, utcnow_iso


def _upload_disk(local, name: str, tags: dict, state: str) -> None:
    """A builder's upload disk (the fake has no PUT for bare disks)."""
    rid = resource_id(local.subscription_id, RG, "Microsoft.Compute",
                      "disks", name)
    with local.store.lock:
        local.store.put({
            "id": rid, "name": name, "type": "Microsoft.Compute/disks",
            "location": LOCATION, "tags": dict(tags),
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {"diskSizeGB": 10, "diskState": state,
                           "osType": "Linux", "timeCreated": utcnow_iso(),
                           "creationData": {"createOption": "Upload"},
                           "provisioningState": "Succeeded"}})


def _pass(adapter, rule) -> list:
    adapter.forget_listings()       # listings are cached for 2 s
    return rule.run_pass()


def test_images_and_upload_disks(env, azure):
    env.write_config([azure.provider()])
    launcher = env.start_launcher()
    adapter = adapter_of(launcher)
    local = azure.local
    write_upload(env.client, "ubuntu", "0000000001", "azure", "0000000001")
    write_upload(env.client, "ubuntu", "0000000002", "azure", "0000000003",
                 state="uploading")
    known = upload_tags("azure", "0000000001", "0000000001")
    uploading = upload_tags("azure", "0000000002", "0000000003")
    unknown = upload_tags("azure", "0000000009", "0000000009")
    local.add_image(RG, "leaked-image", LOCATION, tags=unknown)
    local.add_image(RG, "known-image", LOCATION, tags=known)
    local.add_image(RG, "plain-image", LOCATION,
                    tags={"nodepool_provider_name": "azure"})
    local.add_image(RG, "foreign-image", LOCATION,
                    tags=upload_tags("other", "0000000009", "0000000009"))
    local.add_image(RG, "untagged-image", LOCATION)
    _upload_disk(local, "uploading-disk", uploading, "ActiveUpload")
    _upload_disk(local, "leaked-disk", unknown, "Unattached")

    listed = {(r.type, r.id): r for r in adapter.list_resources()}
    assert {k for k in listed if k[0] == "images"} == {
        ("images", "leaked-image"), ("images", "known-image"),
        ("images", "plain-image")}
    assert listed[("images", "leaked-image")].metadata == unknown
    assert listed[("images", "known-image")].upload_key == \
        "0000000001-0000000001"
    assert listed[("images", "plain-image")].upload_key is None
    assert listed[("disks", "uploading-disk")].metadata == uploading
    assert ("disks", "leaked-disk") in listed

    rule = UpstreamLeakRule(adapter, "azure", launcher.zk)
    assert _pass(adapter, rule) == []
    assert azure.calls("DELETE") == 0
    deleted = _pass(adapter, rule)
    assert sorted((r.type, r.id) for r in deleted) == [
        ("disks", "leaked-disk"), ("images", "leaked-image")]
    wait_gone(azure, "images", ["leaked-image"])
    wait_gone(azure, "disks", ["leaked-disk"])
    assert azure.names("images") == {"known-image", "plain-image",
                                     "foreign-image", "untagged-image"}
    # The upload in progress survives any number of passes.
    _pass(adapter, rule)
    assert "uploading-disk" in azure.names("disks")
    # Deleting an image that is already gone counts as done.
    adapter.delete_resource(listed[("images", "leaked-image")])


def test_image_delete_refuses_what_is_not_ours(env, azure):
    env.write_config([azure.provider()])
    launcher = env.start_launcher()
    azure.local.add_image(RG, "foreign-image", LOCATION,
                          tags=upload_tags("other", "1", "1"))
    resource = Resource(type="images", id="foreign-image",
                        metadata=upload_tags("other", "1", "1"))
    with pytest.raises(Exception, match="not tagged with provider azure"):
        adapter_of(launcher).delete_resource(resource)
    assert "foreign-image" in azure.names("images")
