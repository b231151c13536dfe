"""The POST /servers body for every label and pool setting."""

from __future__ import annotations

import base64

from nodepool.driver.openstack import params
from nodepool.driver.statemachine import RequestInfo


def body(spec, **kw):
    kw.setdefault("flavor_id", "2")
    kw.setdefault("image_id", "img-1")
    kw.setdefault("network_ids", [])
    kw.setdefault("az", None)
    return params.server_body(spec, **kw)


def test_minimal_body(spec_factory):
    b = body(spec_factory())
    assert b == {"name": "np0000000001", "flavorRef": "2",
                 "imageRef": "img-1", "networks": "auto",
                 "min_count": 1, "max_count": 1,
                 "metadata": {"groups": "os,jammy,small",
                              "nodepool_node_id": "0000000001",
                              "nodepool_pool_name": "main",
                              "nodepool_provider_name": "os"}}


def test_networks_before_2_37_are_omitted(spec_factory):
    assert "networks" not in body(spec_factory(), networks_required=False)
    b = body(spec_factory(), network_ids=["n1", "n2"])
    assert b["networks"] == [{"uuid": "n1"}, {"uuid": "n2"}]


def test_every_optional_setting(spec_factory):
    spec = spec_factory(label={"key-name": "k", "userdata": "#cloud-config",
                               "instance-properties": {"a": 1},
                               "boot-from-volume": True,
                               "volume-size": 30},
                        pool={"security-groups": ["web", "ssh"]})
    b = body(spec, az="zone-b", config_drive=True)
    assert "imageRef" not in b
    assert b["block_device_mapping_v2"] == [{
        "boot_index": 0, "uuid": "img-1", "source_type": "image",
        "destination_type": "volume", "volume_size": 30,
        "delete_on_termination": True}]
    assert b["availability_zone"] == "zone-b"
    assert b["security_groups"] == [{"name": "web"}, {"name": "ssh"}]
    assert b["key_name"] == "k"
    assert base64.b64decode(b["user_data"]) == b"#cloud-config"
    assert b["config_drive"] is True
    assert b["metadata"]["a"] == "1"


def test_nodepool_metadata_wins_and_dynamic_properties_render(spec_factory):
    request = RequestInfo(id="100-0000000042", tenant_name="t1",
                          requestor="zuul")
    spec = spec_factory(request=request, label={
        "instance-properties": {"nodepool_node_id": "forged",
                                "long": "x" * 300},
        "dynamic-instance-properties": {"req": "{request.id}",
                                        "who": "{request.requestor}",
                                        "bad": "{request.missing}",
                                        "worse": "{unknown}"}})
    meta = params.metadata(spec)
    assert meta["nodepool_node_id"] == "0000000001"
    assert meta["req"] == "100-0000000042" and meta["who"] == "zuul"
    assert "bad" not in meta and "worse" not in meta
    assert len(meta["long"]) == params.MAX_META


def test_zone_choice(spec_factory):
    # a zone the request already chose wins
    assert params.choose_az(spec_factory(az="zone-x"), ["a", "b"]) == \
        "zone-x"
    # pool zones win over the cloud's
    spec = spec_factory(pool={"availability-zones": ["p1"]})
    assert params.choose_az(spec, ["a", "b"]) == "p1"
    # no zones known: Nova picks
    assert params.choose_az(spec_factory(), []) is None


def test_zone_is_stable_per_request_and_spreads_over_requests(spec_factory):
    zones = ["a", "b", "c"]
    one = RequestInfo(id="200-0000000001")
    picks = {params.choose_az(spec_factory(node_id=str(n), request=one),
                              zones) for n in range(20)}
    assert len(picks) == 1                 # one nodeset, one zone
    spread = {params.choose_az(spec_factory(
        request=RequestInfo(id=f"200-{n:010d}")), zones) for n in range(30)}
    assert spread == set(zones)


def test_user_data_encoding():
    assert params.encode_user_data(None) is None
    assert base64.b64decode(params.encode_user_data("héllo")) == \
        "héllo".encode()
