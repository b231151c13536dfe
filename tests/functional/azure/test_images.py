"""Every image source of config.md §6 reaches the VM's imageReference."""

from __future__ import annotations

from tests.functional.azure.conftest import LOCATION, RG
from tests.functional.azure.helpers import fulfil


def _image_of(azure, node_id: str) -> dict:
    [vm] = [v for v in azure.resources("virtualMachines")
            if v["name"] == f"np{node_id}"]
    return vm["properties"]["storageProfile"]["imageReference"]


def test_image_sources(env, azure):
    local = azure.local
    managed = local.add_image(RG, "custom", LOCATION)
    local.add_image(RG, "ci-20240101", LOCATION, tags={"role": "ci"})
    newest = local.add_image(RG, "ci-20240301", LOCATION,
                             tags={"role": "ci"})
    local.add_image(RG, "ci-20240401", LOCATION, tags={"role": "other"})
    local.add_gallery_image_version("gal", "ubuntu", "1.0.0")
    local.add_gallery_image_version("gal", "ubuntu", "1.1.0")
    local.add_gallery_image_version("pub-gal", "debian", "2.0.0",
                                    community=True)
    images = [
        azure.image("by-id", **{"image-id": managed}),
        azure.image("by-filter", **{"image-filter": {
            "location": "West US", "tags": {"role": "ci"}}}),
        azure.image("shared", **{"shared-gallery-image": {
            "gallery-name": "gal", "name": "ubuntu", "version": "1.0.0"}}),
        azure.image("community", **{"community-gallery-image": {
            "gallery-name": "pub-gal", "name": "debian"}}),
    ]
    for image in images:
        del image["image-reference"]
    labels = [azure.label(name, image=name) for name in
              ("by-id", "by-filter", "shared", "community")]
    env.write_config([azure.provider(images=images, labels=labels)])
    env.start_launcher()
    found = {}
    for name in ("by-id", "by-filter", "shared", "community"):
        _, req = fulfil(env, [name])
        found[name] = _image_of(azure, req["nodes"][0])
    assert found["by-id"]["id"] == managed
    assert found["by-filter"]["id"] == newest
    assert found["shared"]["sharedGalleryImageId"] == \
        "/SharedGalleries/gal/Images/ubuntu/Versions/1.0.0"
    assert found["community"]["communityGalleryImageId"] == \
        "/CommunityGalleries/pub-gal/Images/debian/Versions/latest"


def test_missing_images_are_declined(env, azure):
    images = [
        azure.image("no-filter-match", **{"image-filter": {
            "name": "nothing-like-this"}}),
        azure.image("no-gallery", **{"shared-gallery-image": {
            "gallery-name": "gal", "name": "missing"}}),
    ]
    for image in images:
        del image["image-reference"]
    labels = [azure.label("a", image="no-filter-match"),
              azure.label("b", image="no-gallery"),
              azure.label("c", size="Standard_Nope")]
    env.write_config([azure.provider(images=images + [azure.image()],
                                     labels=labels)])
    env.start_launcher()
    for label in ("a", "b", "c"):
        rid = env.zuul.submit([label])
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert req["state"] == "failed", label
    assert azure.calls("PUT") == 0     # declined without creating anything
