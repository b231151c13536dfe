"""Builder-owned image upload records: read, pick latest, erase."""

import json

from nodepool.zk import ImageUploadState
from nodepool.zk.image import upload_path


def seed_upload(kazoo, image, build, provider, state, state_time,
                external_id="ami-1"):
    # As a builder does: sequential upload ids plus lock directories.
    kazoo.ensure_path(f"/nodepool/images/{image}/builds/lock")
    base = upload_path(image, build, provider)
    kazoo.ensure_path(base + "/lock")
    body = {"state": state, "state_time": state_time,
            "external_id": external_id, "external_name": f"{image}-{build}",
            "format": "raw", "username": "zuul", "python_path": "auto",
            "shell_type": None, "zuul_extra": 1}
    path = kazoo.create(base + "/", json.dumps(body).encode(),
                        sequence=True)
    return path.rsplit("/", 1)[1]


def test_iter_latest_and_erase(zk, zkapi):
    kazoo = zk.kazoo()
    seed_upload(kazoo, "ubuntu", "b1", "aws", "ready", 100.0, "ami-old")
    newest = seed_upload(kazoo, "ubuntu", "b2", "aws", "ready", 200.0,
                         "ami-new")
    seed_upload(kazoo, "ubuntu", "b3", "aws", "uploading", 300.0, None)
    seed_upload(kazoo, "ubuntu", "b2", "gcp", "ready", 250.0, "img")
    kazoo.create("/nodepool/images/ubuntu/builds/b2/providers/aws/images/"
                 "0000009999", b"")  # empty: skipped
    uploads = list(zkapi.iter_image_uploads(provider="aws"))
    assert len(uploads) == 3
    assert {u.provider for u in uploads} == {"aws"}
    latest = zkapi.latest_ready_upload("ubuntu", "aws")
    assert (latest.build_id, latest.id, latest.external_id) == \
        ("b2", newest, "ami-new")
    assert latest.path == upload_path("ubuntu", "b2", "aws", newest)
    assert latest.state == ImageUploadState.READY
    assert latest.extra == {"zuul_extra": 1}
    assert zkapi.latest_ready_upload("debian", "aws") is None
    assert zkapi.erase_provider_uploads("aws") == 3
    assert list(zkapi.iter_image_uploads(provider="aws")) == []
    assert len(list(zkapi.iter_image_uploads())) == 1
    kazoo.stop()
