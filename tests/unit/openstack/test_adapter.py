"""Adapter construction from a real config and clouds.yaml (no cloud is
contacted: the connection is made on first use)."""

from __future__ import annotations

import pytest
import yaml
from openstack import exceptions as sdk_exc

from nodepool.config import config_from_dict
from nodepool.driver import adapter_class
from nodepool.driver.openstack.adapter import OpenStackAdapter


def _provider(diskimages=None, **extra):
    raw = {"name": "os", "cloud": "mycloud",
           "cloud-images": [{"name": "jammy"}],
           "pools": [{"name": "main", "labels": [
               {"name": "small", "cloud-image": "jammy",
                "flavor-name": "m1.small"}]}]}
    raw.update(extra)
    config = config_from_dict({
        "zookeeper-servers": [{"host": "127.0.0.1"}],
        "diskimages": diskimages or [],
        "labels": [{"name": "small"}], "providers": [raw]})
    return config.providers["os"]


@pytest.fixture
def clouds(tmp_path, monkeypatch):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"mycloud": {
        "auth": {"auth_url": "http://127.0.0.1:9/identity/v3",
                 "username": "u", "password": "p", "project_name": "p",
                 "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "regions": ["RegionOne", "RegionTwo"]}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    for key in ("OS_CLOUD", "OS_AUTH_URL", "OS_REGION_NAME"):
        monkeypatch.delenv(key, raising=False)
    return path


def test_registry_finds_the_adapter():
    assert adapter_class("openstack") is OpenStackAdapter


def test_default_driver_and_rate_conversion(clouds):
    provider = _provider(rate=0.25, **{"region-name": "RegionTwo"})
    assert provider.driver == "openstack"
    adapter = OpenStackAdapter(provider)
    assert adapter.api.region == "RegionTwo"
    assert adapter.api.cloud == "mycloud"
    assert adapter.limiter.rate == pytest.approx(4.0)
    # a pool large enough for 4 creates/s of 1.5 s each
    assert adapter.create_pool.workers >= 4 * 1.5
    assert adapter.leak_types == ("instances", "ports", "floatingips")
    adapter.stop()


def test_default_rate_is_one_call_per_second(clouds):
    adapter = OpenStackAdapter(_provider())
    assert adapter.limiter.rate == pytest.approx(1.0)
    adapter.stop()


def test_unknown_cloud_fails_at_start(clouds):
    with pytest.raises(sdk_exc.ConfigException):
        OpenStackAdapter(_provider(cloud="nowhere"))


def test_unknown_region_fails_at_start(clouds):
    with pytest.raises(sdk_exc.ConfigException):
        OpenStackAdapter(_provider(**{"region-name": "Atlantis"}))


def test_labels_without_images_are_unusable(clouds):
    # a top-level diskimage this provider does not upload: never launchable
    provider = _provider(diskimages=[{"name": "dib"}], pools=[{
        "name": "main", "labels": [{"name": "small", "diskimage": "dib",
                                    "flavor-name": "m1.small"}]}])
    adapter = OpenStackAdapter(provider)
    label = provider.pools["main"].labels["small"]
    assert label.image is None
    assert adapter.label_usable(label) is False
    assert adapter.image_available(label) is False
    adapter.stop()
