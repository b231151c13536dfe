"""Defaults of config.md §2-§7, read back from the built value objects."""

from __future__ import annotations

import math

from nodepool.config import (
    CloudImage, Label, PoolLabel, ProviderDiskImage, StaticNode, WebApp,
    ZooKeeperServer, config_from_dict)

INF = math.inf


def test_top_level_defaults(valid_config):
    config = config_from_dict({})
    assert config.zookeeper_servers == ()
    assert config.zookeeper_tls is None
    assert config.zookeeper_timeout == 10.0
    assert config.labels == {}
    assert config.providers == {}
    assert config.webapp == WebApp(port=8005, listen_address="0.0.0.0")
    assert config.max_hold_age == 0
    assert config.tenant_resource_limits == {}
    full = config_from_dict(valid_config("static"))
    assert full.zookeeper_servers == (ZooKeeperServer("zk1.example.com",
                                                      2281, None),)
    assert full.labels["small"] == Label("small", min_ready=0,
                                         max_ready_age=0)


def test_top_level_values_and_builder_keys(valid_config):
    data = valid_config("static")
    data.update({
        "zookeeper-timeout": 20.5, "max-hold-age": 3600,
        "webapp": {"port": 9000, "listen_address": "127.0.0.1"},
        "elements-dir": "/e", "images-dir": "/i", "build-log-dir": "/b",
        "build-log-retention": 7,
        "labels": [{"name": "small", "min-ready": 2, "max-ready-age": 60},
                   {"name": "large", "min-ready": 1}],
        "tenant-resource-limits": [
            {"tenant-name": "t1", "max-servers": 5, "max-cores": 10,
             "max-ram": 2048, "max-volumes": 3, "max-volume-gb": 100,
             "L-43DA4232": 64},
            {"tenant-name": "t2"}],
    })
    config = config_from_dict(data)
    assert config.zookeeper_timeout == 20.5
    assert config.max_hold_age == 3600
    assert config.webapp == WebApp(9000, "127.0.0.1")
    assert config.labels == {"small": Label("small", 2, 60),
                             "large": Label("large", 1, 0)}
    assert config.tenant_resource_limits == {
        "t1": {"instances": 5, "cores": 10, "ram": 2048, "volumes": 3,
               "volume-gb": 100, "L-43DA4232": 64},
        "t2": {}}


def test_top_level_diskimage_inheritance(valid_config):
    data = valid_config("static")
    data["diskimages"] = [
        {"name": "child", "parent": "base", "python-path": "/usr/bin/py3",
         "env-vars": {"B": "2"}, "elements": ["c"]},
        {"name": "base", "abstract": True, "username": "cloud",
         "shell-type": "sh", "env-vars": {"A": "1"}, "elements": ["b"],
         "release": 22},
        {"name": "plain"},
    ]
    images = config_from_dict(data).diskimages
    child = images["child"]
    assert (child.abstract, child.parent, child.username, child.python_path,
            child.shell_type) == (False, "base", "cloud", "/usr/bin/py3",
                                  "sh")
    assert child.env_vars == {"A": "1", "B": "2"}
    assert child.settings == {"elements": ["b", "c"], "release": 22}
    assert images["base"].abstract is True
    plain = images["plain"]
    assert (plain.username, plain.python_path, plain.shell_type,
            plain.env_vars) == ("zuul", "auto", None, {})


def test_aws_defaults(valid_config):
    provider = config_from_dict(valid_config("aws")).providers["aws-east"]
    assert provider.driver == "aws"
    assert (provider.max_concurrency, provider.priority, provider.rate,
            provider.boot_timeout, provider.launch_timeout,
            provider.launch_retries) == (-1, 100, 2.0, 180, 3600, 3)
    assert provider.settings == {
        "region-name": "us-east-1", "profile-name": None, "batch-creates": True,
        "max-servers": INF, "max-cores": INF, "max-ram": INF,
        "max-resources": {}, "object-storage": None, "image-format": "raw",
        "image-import-timeout": None, "post-upload-hook": None,
        "use-internal-ip": False, "host-key-checking": True,
        "public-ipv4": True, "public-ipv6": False}
    pool = provider.pools["main"]
    assert (pool.provider_name, pool.max_servers, pool.max_cores,
            pool.max_ram, pool.max_resources, pool.priority,
            pool.node_attributes, pool.nodes) == (
        "aws-east", INF, INF, INF, {}, 100, None, ())
    assert pool.settings == {
        "subnet-id": None, "security-group-id": None, "public-ipv4": True,
        "public-ipv6": False, "host-key-checking": True,
        "use-internal-ip": False, "availability-zone": None}
    small = pool.labels["small"]
    assert small.settings == {
        "instance-type": "t3.small", "fleet": None, "key-name": "zuul",
        "ebs-optimized": False, "volume-type": None, "volume-size": None,
        "iops": None, "throughput": None, "userdata": None,
        "iam-instance-profile": None, "tags": {}, "dynamic-tags": {},
        "use-spot": False, "imdsv2": None, "dedicated-host": False}
    assert small.image == CloudImage(
        "ubuntu", username="ubuntu", connection_type="ssh",
        connection_port=22, python_path="auto", shell_type=None,
        settings={"image-id": "ami-1", "image-filters": None})
    assert small.image is provider.cloud_images["ubuntu"]
    large = pool.labels["large"]
    assert (large.cloud_image, large.diskimage) == (None, "jammy")
    assert large.image == ProviderDiskImage(
        "jammy", username="zuul", settings={
            "pause": False, "architecture": None, "ena-support": None,
            "volume-type": None, "volume-size": None, "iops": None,
            "throughput": None, "import-method": "snapshot",
            "imds-support": None, "tags": {}})


def test_aws_pool_inherits_provider_limits_and_ip_settings(valid_config,
                                                           change):
    data = valid_config("aws")
    P = "providers[0]"
    change(data, f"{P}.max-servers", 40)
    change(data, f"{P}.max-cores", 100)
    change(data, f"{P}.max-resources", {"L-1": 5, "L-2": 6})
    change(data, f"{P}.priority", 7)
    change(data, f"{P}.public-ipv4", False)
    change(data, f"{P}.pools[0].max-ram", 4096)
    change(data, f"{P}.pools[0].max-resources", {"L-2": 1})
    change(data, f"{P}.pools[0].public-ip-address", True)
    change(data, f"{P}.pools[0].labels[0].iam-instance-profile", {})
    change(data, f"{P}.pools[0].labels[1].iam-instance-profile",
           {"arn": "arn:aws:iam::1:instance-profile/n"})
    data["providers"][0]["pools"].append(
        {"name": "second", "max-servers": 2, "priority": 1, "labels": [],
         "public-ipv4": True, "public-ip-address": False})
    provider = config_from_dict(data).providers["aws-east"]
    main, second = provider.pools["main"], provider.pools["second"]
    assert (main.max_servers, main.max_cores, main.max_ram) == (40, 100, 4096)
    assert main.max_resources == {"L-1": 5, "L-2": 1}
    assert (main.priority, second.priority) == (7, 1)
    assert second.max_servers == 2
    # The deprecated alias wins over public-ipv4 and the provider default.
    assert main.settings["public-ipv4"] is True
    assert second.settings["public-ipv4"] is False
    labels = main.labels
    assert labels["small"].settings["iam-instance-profile"] is None
    assert labels["large"].settings["iam-instance-profile"] == {
        "arn": "arn:aws:iam::1:instance-profile/n"}


def test_aws_diskimage_username_and_connection(valid_config, change):
    data = valid_config("aws")
    change(data, "diskimages[0].username", "builder")
    change(data, "providers[0].cloud-images[0].connection-type", "winrm")
    image_provider = config_from_dict(data).providers["aws-east"]
    assert image_provider.diskimages["jammy"].username == "builder"
    assert image_provider.cloud_images["ubuntu"].connection_port == 5986
    change(data, "providers[0].diskimages[0].username", "own")
    change(data, "providers[0].diskimages[0].python-path", "/py")
    disk = config_from_dict(data).providers["aws-east"].diskimages["jammy"]
    assert (disk.username, disk.python_path) == ("own", "/py")


def test_openstack_defaults(valid_config, change):
    data = valid_config("openstack")
    change(data, "diskimages[0].username", "builder")
    change(data, "diskimages[0].python-path", "/usr/bin/python3")
    provider = config_from_dict(data).providers["os-1"]
    assert provider.driver == "openstack"
    assert (provider.max_concurrency, provider.priority, provider.rate,
            provider.boot_timeout, provider.launch_timeout,
            provider.launch_retries) == (-1, 100, 1.0, 60, 3600, 3)
    assert provider.settings == {
        "cloud": "mycloud", "region-name": None,
        "clean-floating-ips": False, "port-cleanup-interval": 600,
        "nodepool-id": None, "image-upload-timeout": 3600,
        "image-name-format": "{image_name}-{timestamp}",
        "post-upload-hook": None}
    pool = provider.pools["main"]
    assert (pool.max_servers, pool.max_cores, pool.max_ram,
            pool.max_resources, pool.priority) == (INF, INF, INF, {}, 100)
    assert pool.ignore_provider_quota is False
    assert pool.settings == {
        "availability-zones": None,
        "networks": [], "security-groups": [], "auto-floating-ip": True,
        "host-key-checking": True, "max-volumes": INF,
        "max-volume-gb": INF}
    small = pool.labels["small"]
    assert small.settings == {
        "flavor-name": "m1.small", "min-ram": None, "key-name": None,
        "console-log": False, "boot-from-volume": False, "volume-size": 50,
        "instance-properties": {}, "dynamic-instance-properties": {},
        "userdata": None, "networks": [], "host-key-checking": True}
    assert small.image == CloudImage("ubuntu", username=None, settings={
        "image-id": None, "config-drive": None, "image-name": "ubuntu"})
    # Provider diskimages take username and python-path from the top level.
    assert pool.labels["large"].image == ProviderDiskImage(
        "jammy", username="builder", python_path="/usr/bin/python3",
        settings={"config-drive": None, "pause": False, "meta": {}})


def test_openstack_values(valid_config, change):
    data = valid_config("openstack")
    P, POOL = "providers[0]", "providers[0].pools[0]"
    change(data, f"{P}.rate", "0.25")
    change(data, f"{POOL}.max-volumes", 4)
    change(data, f"{POOL}.max-volume-gb", 400)
    change(data, f"{POOL}.networks", ["net-a"])
    change(data, f"{POOL}.host-key-checking", False)
    change(data, f"{POOL}.ignore-provider-quota", True)
    change(data, f"{POOL}.labels[1].networks", ["net-b"])
    change(data, f"{POOL}.labels[1].host-key-checking", True)
    # A diskimage label need not be uploaded by this provider.
    change(data, f"{P}.diskimages", [])
    pool = config_from_dict(data).providers["os-1"].pools["main"]
    assert config_from_dict(data).providers["os-1"].rate == 0.25
    assert pool.max_resources == {"volumes": 4, "volume-gb": 400}
    assert pool.ignore_provider_quota is True
    assert "ignore-provider-quota" not in pool.settings
    assert pool.labels["small"].settings["networks"] == ["net-a"]
    assert pool.labels["small"].settings["host-key-checking"] is False
    assert pool.labels["large"].settings["networks"] == ["net-b"]
    assert pool.labels["large"].settings["host-key-checking"] is True
    assert pool.labels["large"].image is None
    assert pool.labels["large"].diskimage == "jammy"


def test_azure_defaults(valid_config):
    provider = config_from_dict(valid_config("azure")).providers["az-1"]
    assert (provider.max_concurrency, provider.priority, provider.rate,
            provider.boot_timeout, provider.launch_timeout,
            provider.launch_retries) == (-1, 100, 1.0, 120, 3600, 3)
    assert provider.settings == {
        "location": "eastus", "resource-group": "nodes",
        "resource-group-location": "eastus",
        "auth-path": "/etc/nodepool/azure.json", "subnet-id": None,
        "zuul-public-key": None, "post-upload-hook": None,
        "network": {"resource-group": "nodes", "network": "vnet",
                    "subnet": "default"},
        "ipv4": True, "ipv6": False, "public-ipv4": True,
        "public-ipv6": False, "use-internal-ip": False,
        "host-key-checking": True}
    pool = provider.pools["main"]
    assert (pool.max_servers, pool.max_cores, pool.max_ram) == (5, INF, INF)
    assert pool.settings == {
        "ipv4": True, "ipv6": False, "public-ipv4": True,
        "public-ipv6": False, "use-internal-ip": False,
        "host-key-checking": True}
    label = pool.labels["small"]
    assert label.settings == {
        "hardware-profile": {"vm-size": "Standard_B1s"}, "tags": {},
        "dynamic-tags": {}, "user-data": None, "custom-data": None,
        "volume-size": None}
    assert label.image.settings == {
        "image-reference": None, "image-id": "/subscriptions/x/images/u",
        "image-filter": None, "shared-gallery-image": None,
        "community-gallery-image": None, "password": None,
        "generate-password": False, "key": None}


def test_azure_ip_rules_network_and_keys(valid_config, change):
    data = valid_config("azure")
    P = "providers[0]"
    change(data, f"{P}.network", {"network": "vnet2"})
    change(data, f"{P}.zuul-public-key", "ssh-ed25519 AAAA")
    change(data, f"{P}.public-ipv4", False)
    change(data, f"{P}.diskimages", [{"name": "jammy"}])
    change(data, f"{P}.pools[0].labels[0].diskimage", "jammy")
    data["providers"][0]["pools"].append(
        {"name": "v6", "max-servers": 1, "ipv6": True, "labels": []})
    provider = config_from_dict(data).providers["az-1"]
    assert provider.settings["network"] == {
        "resource-group": "nodes", "network": "vnet2", "subnet": "default"}
    # Neither family enabled: IPv4 is forced on.
    assert provider.pools["main"].settings["ipv4"] is True
    assert provider.pools["main"].settings["public-ipv4"] is False
    assert provider.pools["v6"].settings["ipv4"] is False
    assert provider.pools["v6"].settings["ipv6"] is True
    assert provider.cloud_images["ubuntu"].settings["key"] == \
        "ssh-ed25519 AAAA"
    # Diskimages get no zuul-public-key default; both set: diskimage wins.
    label = provider.pools["main"].labels["small"]
    assert label.image is provider.diskimages["jammy"]
    assert label.image.settings["key"] is None
    assert label.image.username == "zuul"


def test_static_defaults_and_labels(valid_config, change):
    data = valid_config("static")
    change(data, "providers[0].pools[0].nodes", [
        {"name": "h1", "labels": "small  large"},
        {"name": "h2", "labels": ["large"], "ssh-port": 2022,
         "host-key": "ssh-ed25519 AAAA"},
        {"name": "h3", "labels": [], "ssh-port": 2022,
         "connection-port": 2200, "connection-type": "winrm"},
    ])
    provider = config_from_dict(data).providers["static-1"]
    assert (provider.driver, provider.rate, provider.boot_timeout,
            provider.launch_timeout, provider.launch_retries,
            provider.cloud_images, provider.diskimages) == (
        "static", None, None, None, None, {}, {})
    pool = provider.pools["main"]
    assert (pool.max_servers, pool.priority) == (INF, 100)
    assert pool.labels == {"small": PoolLabel("small"),
                           "large": PoolLabel("large")}
    h1, h2, h3 = pool.nodes
    assert h1 == StaticNode(
        name="h1", labels=("small", "large"), username="zuul", timeout=5,
        host_key_checking=True, host_keys=(), connection_type="ssh",
        connection_port=22, shell_type=None, python_path="auto",
        max_parallel_jobs=1)
    assert (h2.connection_port, h2.host_keys) == (2022, ("ssh-ed25519 AAAA",))
    assert h3.connection_port == 2200
