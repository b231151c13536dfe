"""AMI resolution: image-id or newest filter match, cached."""

from __future__ import annotations

import pytest

from nodepool.config.model import CloudImage, PoolLabel
from nodepool.driver import errors
from nodepool.driver.aws.images import ImageResolver, image_reference


def label(settings):
    return PoolLabel(name="l", cloud_image="img",
                     image=CloudImage(name="img", settings=settings))


class Describe:
    def __init__(self, images):
        self.images = images
        self.calls = []

    def __call__(self, Filters):
        self.calls.append(Filters)
        if Filters[0]["Name"] == "image-id":
            return [i for i in self.images
                    if i["ImageId"] in Filters[0]["Values"]]
        return list(self.images)


IMAGES = [{"ImageId": "ami-old", "CreationDate": "2024-01-01"},
          {"ImageId": "ami-new", "CreationDate": "2025-01-01"},
          {"ImageId": "ami-broken", "CreationDate": "2026-01-01",
           "State": "failed"}]


def test_filters_pick_newest_available():
    describe = Describe(IMAGES)
    resolver = ImageResolver(describe)
    lbl = label({"image-filters": [{"name": "name", "values": ["x*"]},
                                   {"Name": "state", "Values": ["a"]}]})
    assert resolver.resolve(lbl)["ImageId"] == "ami-new"
    assert describe.calls[0] == [{"Name": "name", "Values": ["x*"]},
                                 {"Name": "state", "Values": ["a"]}]
    resolver.resolve(lbl)
    assert len(describe.calls) == 1            # cached


def test_missing_image_id():
    resolver = ImageResolver(Describe(IMAGES))
    lbl = label({"image-id": "ami-gone"})
    assert resolver.available(lbl) is False
    with pytest.raises(errors.ConfigurationError):
        resolver.resolve(lbl)
    assert resolver.available(label({"image-id": "ami-old"})) is True


def test_transient_failure_does_not_decline():
    def describe(Filters):
        raise errors.TransientError("down")

    assert ImageResolver(describe).available(label({"image-id": "a"}))


def test_diskimage_uses_the_upload():
    lbl = PoolLabel(name="l", diskimage="d")
    assert image_reference(lbl, "ami-up") == ("id", "ami-up")
    assert image_reference(lbl) is None
    assert image_reference(PoolLabel(name="l")) is None


def test_diskimage_upload_must_name_an_ami():
    resolver = ImageResolver(Describe([{"ImageId": "ami-up"}]))
    lbl = PoolLabel(name="l", diskimage="d")
    assert resolver.resolve(lbl, "ami-up")["ImageId"] == "ami-up"
    with pytest.raises(errors.ConfigurationError, match="not an AMI"):
        resolver.resolve(lbl, "/nodepool/images/d/builds/1/providers/p")
