"""A ``cloud-images`` entry with ``image-id`` boots exactly that image.

Against the local OpenStack over HTTP: the cloud has several images, none
named like the cloud-image entry, so only the id can select one.  As
upstream, the id is passed to Nova as is -- no Glance lookup by name --
and the node's ``image_id`` is the cloud-image's name.
"""

from __future__ import annotations

from tests.functional.openstack.helpers import (
    label, post_count, provider, servers_by_node)


def image(cloud, name: str) -> dict:
    return next(i for i in cloud.state.images if i["name"] == name)


def glance_calls(cloud) -> int:
    return sum(count for call, count in cloud.stats()["calls"].items()
               if call.startswith("GET /image/v2/images"))


def test_node_boots_from_the_configured_image_id(env, cloud):
    wanted = image(cloud, "debian-bookworm")
    other = image(cloud, "ubuntu-jammy")
    assert wanted["id"] != other["id"]
    env.write_config([provider(
        labels=[label("by-id", cloud_image="pinned")],
        **{"cloud-images": [{"name": "pinned", "image-id": wanted["id"],
                             "username": "debian"}]})])
    env.start_launcher()
    rid = env.zuul.submit(["by-id"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    (node_id,) = req["nodes"]
    node = env.zuul.get_node(node_id)
    server = servers_by_node(cloud)[node_id]
    assert node["external_id"] == server["id"]
    assert server["image"]["id"] == wanted["id"]
    assert cloud.state.servers[server["id"]].image_id == wanted["id"]
    assert node["image_id"] == "pinned" and node["username"] == "debian"
    assert server["metadata"]["groups"] == "os,pinned,by-id"
    # The id is used as given: the image list was never searched.
    assert glance_calls(cloud) == 0


def test_unknown_image_id_fails_the_launch_at_the_cloud(env, cloud):
    """Upstream does not check an ``image-id`` before booting: the label
    is offered, Nova refuses each create, and the request fails after the
    launch attempts -- no server is left."""
    env.write_config([provider(
        labels=[label("by-id", cloud_image="pinned")],
        **{"launch-retries": 2,
           "cloud-images": [{"name": "pinned", "username": "zuul",
                             "image-id": "00000000-0000-4000-8000-"
                                         "000000000000"}]})])
    env.start_launcher()
    rid = env.zuul.submit(["by-id"])
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "failed"
    assert post_count(cloud) == 2          # both attempts reached Nova
    assert cloud.servers() == []
