"""Image references for every source, and availability checks."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.images import (
    ImageResolver, gallery_image_id, image_source, pick_filtered)

NONE = {"image-reference": None}


def resolver(clock, images=(), versions=None, calls=None):
    calls = calls if calls is not None else []

    def list_images():
        calls.append("images")
        if isinstance(images, Exception):
            raise images
        return list(images)

    def list_versions(kind, gallery, name):
        calls.append((kind, gallery, name))
        if versions is None:
            raise errors.NotFoundError("no such gallery image")
        return versions

    return ImageResolver(list_images, list_versions,
                         lambda v: f"/subscriptions/s/images/{v}",
                         ttl=60, clock=clock)


def test_reference_and_id(spec_factory, clock):
    r = resolver(clock)
    spec = spec_factory()
    assert r.resolve(spec.label) == {"publisher": "Canonical",
                                     "offer": "ubuntu", "sku": "server",
                                     "version": "latest"}
    spec = spec_factory(image={**NONE, "image-id": "/subscriptions/s/i"})
    assert r.resolve(spec.label) == {"id": "/subscriptions/s/i"}
    assert r.available(spec.label)


def test_diskimage_uses_the_upload(spec_factory, clock):
    r = resolver(clock)
    spec = spec_factory(diskimage="built", image_external_id="img-7")
    assert image_source(spec.label, spec.image_external_id) == \
        ("diskimage", "img-7")
    assert r.resolve(spec.label, "img-7") == \
        {"id": "/subscriptions/s/images/img-7"}
    with pytest.raises(errors.ConfigurationError):
        r.resolve(spec.label, None)


def test_pick_filtered():
    images = [
        {"name": "ci-1", "location": "westus", "tags": {"role": "ci"}},
        {"name": "ci-3", "location": "westus", "tags": {"role": "ci",
                                                         "x": "y"}},
        {"name": "ci-4", "location": "eastus", "tags": {"role": "ci"}},
        {"name": "ci-5", "location": "westus", "tags": {"role": "ci"},
         "properties": {"provisioningState": "Creating"}},
        {"name": "web", "location": "westus", "tags": {}},
    ]
    assert pick_filtered(images, {"location": "West US",
                                  "tags": {"role": "ci"}})["name"] == "ci-3"
    assert pick_filtered(images, {"name": "web"})["name"] == "web"
    assert pick_filtered(images, {"tags": {"role": "db"}}) is None


def test_filter_resolution_is_cached(spec_factory, clock):
    calls = []
    r = resolver(clock, images=[{"name": "a", "id": "/img/a",
                                 "location": "westus"}], calls=calls)
    spec = spec_factory(image={**NONE, "image-filter": {"name": "a"}})
    assert r.resolve(spec.label) == {"id": "/img/a"}
    assert r.available(spec.label)
    assert calls == ["images"]
    missing = spec_factory(image={**NONE, "image-filter": {"name": "b"}})
    assert not r.available(missing.label)
    with pytest.raises(errors.ConfigurationError):
        r.resolve(missing.label)


def test_galleries(spec_factory, clock):
    shared = {"gallery-name": "g", "name": "u"}
    assert gallery_image_id("shared-gallery-image", shared) == \
        "/SharedGalleries/g/Images/u/Versions/latest"
    assert gallery_image_id("community-gallery-image",
                            {**shared, "version": "1.2"}) == \
        "/CommunityGalleries/g/Images/u/Versions/1.2"
    versions = [{"name": "1.0", "properties": {}},
                {"name": "2.0", "properties": {"excludeFromLatest": True}}]
    r = resolver(clock, versions=versions)
    spec = spec_factory(image={**NONE, "shared-gallery-image": shared})
    assert r.resolve(spec.label) == {
        "sharedGalleryImageId": "/SharedGalleries/g/Images/u/Versions/latest"}
    assert r.available(spec.label)
    pinned = spec_factory(image={**NONE, "community-gallery-image": {
        **shared, "version": "3.0"}})
    assert not r.available(pinned.label)
    assert not resolver(clock).available(spec.label)   # gallery unknown


def test_lookup_failure_says_available(spec_factory, clock):
    r = resolver(clock, images=errors.TransientError("503"))
    spec = spec_factory(image={**NONE, "image-filter": {"name": "a"}})
    assert r.available(spec.label)
    with pytest.raises(errors.TransientError):
        r.resolve(spec.label)
