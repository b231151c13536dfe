"""Node fields that come from the image a label boots (local OpenStack).

As upstream: a diskimage label's node takes ``username``, ``python_path``
and ``shell_type`` from the top-level diskimage (OpenStack providers have
no such keys on their ``diskimages`` entries) and ``connection_type`` /
``connection_port`` from the provider entry; a cloud-image label's node
takes all of them from its ``cloud-images`` entry.
"""

from __future__ import annotations

import json
import time

from tests.functional.openstack.helpers import label, provider


def _upload(env, cloud, image: str, provider_name: str = "os") -> str:
    """Record a ready upload of ``image`` as the builder would."""
    external_id = next(i["id"] for i in cloud.state.images
                       if i["name"] == "ubuntu-jammy")
    path = (f"/nodepool/images/{image}/builds/0000000001/providers/"
            f"{provider_name}/images/0000000001")
    env.client.create(path, json.dumps({
        "state": "ready", "state_time": time.time(),
        "external_id": external_id, "external_name": image,
        "format": "qcow2", "username": "ignored"}).encode(), makepath=True)
    return path


def test_diskimage_and_cloud_image_fields_reach_the_node(env, cloud):
    disk = label("disk")
    del disk["cloud-image"]
    disk["diskimage"] = "win"
    cloudy = label("cloudy")
    cfg = provider(labels=[disk, cloudy],
                   diskimages=[{"name": "win", "connection-port": 2222}])
    cfg["cloud-images"][0].update({"shell-type": "powershell",
                                   "python-path": "/opt/py"})
    env.write_config([cfg], diskimages=[{
        "name": "win", "username": "Administrator",
        "python-path": "C:/Python/python.exe", "shell-type": "cmd"}])
    upload = _upload(env, cloud, "win")
    env.start_launcher()
    rid = env.zuul.submit(["disk", "cloudy"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    disk_node, cloud_node = map(env.zuul.get_node, req["nodes"])
    assert disk_node["image_id"].endswith(upload.split("/win/", 1)[1])
    assert disk_node["shell_type"] == "cmd"
    assert disk_node["python_path"] == "C:/Python/python.exe"
    assert disk_node["username"] == "Administrator"
    assert disk_node["connection_type"] == "ssh"
    assert disk_node["connection_port"] == 2222
    assert cloud_node["shell_type"] == "powershell"
    assert cloud_node["python_path"] == "/opt/py"
    assert cloud_node["username"] == "zuul"
