"""Bad configurations: every error is reported as ``<path>: <message>``.

Each case starts from a valid config (``config_samples.valid_config``),
makes a few edits, and states the complete list of expected error lines, so
a case also fails if the validator reports anything extra.
"""

from __future__ import annotations

import pytest

from nodepool.config import ConfigError, config_from_dict, validate_config
from nodepool.config.registry import driver_names
from nodepool.config.validate import validate_data

P = "providers[0]"
POOL = "providers[0].pools[0]"
L0 = "providers[0].pools[0].labels[0]"
L1 = "providers[0].pools[0].labels[1]"
NODE = "providers[0].pools[0].nodes[0]"

# (id, drivers, edits, expected lines); an edit is (path, value) to set or
# (path,) to delete.
CASES = [
    # -- top level ---------------------------------------------------------
    ("zk-timeout-int", ["static"], [("zookeeper-timeout", 20)],
     ["zookeeper-timeout: expected float"]),
    ("zk-host-int", ["static"], [("zookeeper-servers[0].host", 1)],
     ["zookeeper-servers[0].host: expected str"]),
    ("zk-port-str", ["static"], [("zookeeper-servers[0].port", "2281")],
     ["zookeeper-servers[0].port: expected int"]),
    ("zk-tls-partial", ["static"], [("zookeeper-tls.ca",)],
     ["zookeeper-tls.ca: required key not provided"]),
    ("zk-tls-extra", ["static"], [("zookeeper-tls.password", "x")],
     ["zookeeper-tls.password: extra keys not allowed"]),
    ("unknown-top-key", ["static"], [("label", [])],
     ["label: extra keys not allowed"]),
    ("webapp-extra", ["static"], [("webapp", {"listen-address": "::"})],
     ["webapp.listen-address: extra keys not allowed"]),
    ("label-no-name", ["static"], [("labels[1]", {"min-ready": 1})],
     ["labels[1].name: required key not provided"]),
    ("label-min-ready-str", ["static"], [("labels[0].min-ready", "2")],
     ["labels[0].min-ready: expected int"]),
    ("explicit-null", ["static"], [("max-hold-age", None)],
     ["max-hold-age: expected int"]),
    ("labels-not-list", ["openstack"], [("labels", {"name": "small"})],
     ["labels: expected a list"]),
    ("tenant-extra-not-int", ["static"],
     [("tenant-resource-limits", [{"tenant-name": "t", "L-1": "many"}])],
     ["tenant-resource-limits[0].L-1: expected int"]),
    ("tenant-no-name", ["static"],
     [("tenant-resource-limits", [{"max-servers": 1}])],
     ["tenant-resource-limits[0].tenant-name: required key not provided"]),
    ("diskimage-extra", ["static"], [("diskimages[0].elemnts", ["vm"])],
     ["diskimages[0].elemnts: extra keys not allowed"]),
    ("diskimage-duplicate", ["static"], [("diskimages[1]", {"name": "jammy"})],
     ["diskimages[1].name: duplicate diskimage 'jammy' (first at "
      "diskimages[0])"]),
    ("diskimage-no-parent", ["static"], [("diskimages[0].parent", "base")],
     ["diskimages[0].parent: parent diskimage 'base' is not defined"]),
    ("diskimage-self-parent", ["static"], [("diskimages[0].parent", "jammy")],
     ["diskimages[0].parent: parent chain is cyclic: jammy -> jammy"]),
    ("diskimage-env-not-str", ["static"],
     [("diskimages[0].env-vars", {"DIB_RELEASE": 22})],
     ["diskimages[0].env-vars.DIB_RELEASE: expected str"]),
    # -- common provider / pool keys ---------------------------------------
    ("unknown-driver", ["static"], [(f"{P}.driver", "gce")],
     [f"{P}.driver: driver 'gce' is not supported (expected one of: "
      f"{', '.join(driver_names())})"]),
    ("driver-not-str", ["static"], [(f"{P}.driver", 3)],
     [f"{P}.driver: expected str"]),
    ("provider-not-mapping", ["static"], [(P, "static-1")],
     [f"{P}: expected dict"]),
    ("max-concurrency-str", ["aws"], [(f"{P}.max-concurrency", "1")],
     [f"{P}.max-concurrency: expected int"]),
    ("pool-priority-str", ["aws"], [(f"{POOL}.priority", "high")],
     [f"{POOL}.priority: expected int"]),
    ("node-attributes-list", ["aws"], [(f"{POOL}.node-attributes", [1])],
     [f"{POOL}.node-attributes: expected dict"]),
    ("pool-no-name", ["azure"], [(f"{POOL}.name",)],
     [f"{POOL}.name: required key not provided"]),
    # -- aws ----------------------------------------------------------------
    ("aws-key-name-missing", ["aws"], [(f"{L0}.key-name",)],
     [f"{L0}.key-name: required key not provided"]),
    ("aws-key-name-int", ["aws"], [(f"{L0}.key-name", 42)],
     [f"{L0}.key-name: expected str"]),
    ("aws-region-missing", ["aws"], [(f"{P}.region-name",)],
     [f"{P}.region-name: required key not provided"]),
    ("aws-rate-str", ["aws"], [(f"{P}.rate", "fast")],
     [f"{P}.rate: expected float"]),
    ("aws-pools-missing", ["aws"], [(f"{P}.pools",)],
     [f"{P}.pools: required key not provided"]),
    ("aws-cloud-image-undefined", ["aws"], [(f"{L0}.cloud-image", "debian")],
     [f"{L0}.cloud-image: cloud-image 'debian' is not defined in provider "
      "'aws-east'"]),
    ("aws-diskimage-not-in-provider", ["aws"],
     [(f"{L1}.diskimage", "focal")],
     [f"{L1}.diskimage: diskimage 'focal' is not defined in provider "
      "'aws-east'"]),
    ("aws-label-undefined", ["aws"], [(f"{L0}.name", "tiny")],
     [f"{L0}.name: label 'tiny' is not defined in top-level labels"]),
    ("aws-image-id-and-filters", ["aws"],
     [(f"{P}.cloud-images[0].image-filters", [{"name": "n",
                                               "values": ["x"]}])],
     [f"{P}.cloud-images[0].image-id: only one of image-id, image-filters "
      "may be set"]),
    ("aws-image-source-missing", ["aws"],
     [(f"{P}.cloud-images[0].image-id",)],
     [f"{P}.cloud-images[0].image-id: required key not provided (exactly "
      "one of image-id, image-filters)"]),
    ("aws-image-filter-extra", ["aws"],
     [(f"{P}.cloud-images[0].image-id",),
      (f"{P}.cloud-images[0].image-filters", [{"name": "n", "owner": "me"}])],
     [f"{P}.cloud-images[0].image-filters[0].owner: extra keys not "
      "allowed"]),
    ("aws-cloud-image-and-diskimage", ["aws"], [(f"{L0}.diskimage", "jammy")],
     [f"{L0}.cloud-image: only one of cloud-image, diskimage may be set"]),
    ("aws-instance-type-and-fleet", ["aws"],
     [(f"{L0}.fleet", {"instance-types": ["t3.small"],
                       "allocation-strategy": "prioritized"})],
     [f"{L0}.instance-type: only one of instance-type, fleet may be set"]),
    ("aws-fleet-extra", ["aws"],
     [(f"{L0}.instance-type",),
      (f"{L0}.fleet", {"instance-types": ["t3.small"], "max-price": 1,
                       "allocation-strategy": "prioritized"})],
     [f"{L0}.fleet.max-price: extra keys not allowed"]),
    ("aws-fleet-strategy", ["aws"],
     [(f"{L0}.instance-type",),
      (f"{L0}.fleet", {"instance-types": ["t3.small"],
                       "allocation-strategy": "cheapest"})],
     [f"{L0}.fleet.allocation-strategy: not a valid value (expected one "
      "of: prioritized, price-capacity-optimized, capacity-optimized, "
      "diversified, lowest-price)"]),
    ("aws-iam-both", ["aws"],
     [(f"{L0}.iam-instance-profile", {"name": "n", "arn": "arn:x"})],
     [f"{L0}.iam-instance-profile.name: only one of name, arn may be set"]),
    ("aws-dedicated-no-az", ["aws"], [(f"{L0}.dedicated-host", True)],
     [f"{L0}.dedicated-host: dedicated-host requires the pool's "
      "availability-zone"]),
    ("aws-dedicated-spot", ["aws"],
     [(f"{POOL}.availability-zone", "us-east-1a"),
      (f"{L0}.dedicated-host", True), (f"{L0}.use-spot", True)],
     [f"{L0}.dedicated-host: dedicated-host can not be combined with "
      "use-spot"]),
    ("aws-imds-import-image", ["aws"],
     [(f"{P}.diskimages[0].imds-support", "v2.0"),
      (f"{P}.diskimages[0].import-method", "image")],
     [f"{P}.diskimages[0].imds-support: imds-support 'v2.0' can not be used "
      "with import-method 'image'"]),
    ("aws-imdsv2-value", ["aws"], [(f"{L0}.imdsv2", "yes")],
     [f"{L0}.imdsv2: not a valid value (expected one of: required, "
      "optional, null)"]),
    ("aws-object-storage-extra", ["aws"],
     [(f"{P}.object-storage", {"bucket-name": "b", "region": "x"})],
     [f"{P}.object-storage.region: extra keys not allowed"]),
    ("aws-max-resources-str", ["aws"],
     [(f"{P}.max-resources", {"L-1216C47A": "lots"})],
     [f"{P}.max-resources.L-1216C47A: expected int"]),
    ("aws-tags-not-mapping", ["aws"], [(f"{L0}.tags", ["a"])],
     [f"{L0}.tags: expected dict"]),
    # -- openstack ----------------------------------------------------------
    ("os-cloud-missing", ["openstack"], [(f"{P}.cloud",)],
     [f"{P}.cloud: required key not provided"]),
    ("os-rate-not-float", ["openstack"], [(f"{P}.rate", "abc")],
     [f"{P}.rate: expected float"]),
    ("os-label-no-image", ["openstack"], [(f"{L0}.cloud-image",)],
     [f"{L0}.cloud-image: required key not provided (exactly one of "
      "cloud-image, diskimage)"]),
    ("os-label-no-flavor", ["openstack"], [(f"{L0}.flavor-name",)],
     [f"{L0}.flavor-name: required key not provided (at least one of "
      "flavor-name, min-ram)"]),
    ("os-image-id-and-name", ["openstack"],
     [(f"{P}.cloud-images[0].image-id", "1"),
      (f"{P}.cloud-images[0].image-name", "Ubuntu")],
     [f"{P}.cloud-images[0].image-id: only one of image-id, image-name may "
      "be set"]),
    ("os-diskimage-username", ["openstack"],
     [(f"{P}.diskimages[0].username", "root")],
     [f"{P}.diskimages[0].username: extra keys not allowed"]),
    ("os-provider-diskimage-undefined", ["openstack"],
     [(f"{P}.diskimages[0].name", "focal")],
     [f"{P}.diskimages[0].name: diskimage 'focal' is not defined in "
      "top-level diskimages"]),
    ("os-label-diskimage-undefined", ["openstack"],
     [(f"{L1}.diskimage", "focal")],
     [f"{L1}.diskimage: diskimage 'focal' is not defined in top-level "
      "diskimages"]),
    ("os-abstract-diskimage", ["openstack"],
     [("diskimages[0].abstract", True)],
     [f"{P}.diskimages[0].name: diskimage 'jammy' is abstract and can not "
      "be used by a provider",
      f"{L1}.diskimage: diskimage 'jammy' is abstract and can not be used "
      "by a provider"]),
    ("os-networks-str", ["openstack"], [(f"{POOL}.networks", "private")],
     [f"{POOL}.networks: expected a list"]),
    ("os-network-item-int", ["openstack"], [(f"{L0}.networks", ["a", 7])],
     [f"{L0}.networks[1]: expected str"]),
    ("os-ignore-provider-quota-str", ["openstack"],
     [(f"{POOL}.ignore-provider-quota", "yes")],
     [f"{POOL}.ignore-provider-quota: expected bool"]),
    ("aws-ignore-provider-quota", ["aws"],
     [(f"{POOL}.ignore-provider-quota", True)],
     [f"{POOL}.ignore-provider-quota: extra keys not allowed"]),
    # -- azure ----------------------------------------------------------------
    ("azure-pool-max-servers", ["azure"], [(f"{POOL}.max-servers",)],
     [f"{POOL}.max-servers: required key not provided"]),
    ("azure-auth-path-missing", ["azure"], [(f"{P}.auth-path",)],
     [f"{P}.auth-path: required key not provided"]),
    ("azure-hardware-profile-missing", ["azure"],
     [(f"{L0}.hardware-profile",)],
     [f"{L0}.hardware-profile: required key not provided"]),
    ("azure-hardware-profile-extra", ["azure"],
     [(f"{L0}.hardware-profile.cpus", 2)],
     [f"{L0}.hardware-profile.cpus: extra keys not allowed"]),
    ("azure-image-source-missing", ["azure"],
     [(f"{P}.cloud-images[0].image-id",)],
     [f"{P}.cloud-images[0].image-reference: required key not provided "
      "(exactly one of image-reference, image-id, image-filter, "
      "shared-gallery-image, community-gallery-image)"]),
    ("azure-image-reference-partial", ["azure"],
     [(f"{P}.cloud-images[0].image-id",),
      (f"{P}.cloud-images[0].image-reference",
       {"publisher": "Canonical", "offer": "o", "version": "latest"})],
     [f"{P}.cloud-images[0].image-reference.sku: required key not "
      "provided"]),
    ("azure-gallery-partial", ["azure"],
     [(f"{P}.cloud-images[0].image-id",),
      (f"{P}.cloud-images[0].community-gallery-image", {"name": "u"})],
     [f"{P}.cloud-images[0].community-gallery-image.gallery-name: required "
      "key not provided"]),
    ("azure-network-extra", ["azure"],
     [(f"{P}.network", {"network": "vnet", "vnet": "x"})],
     [f"{P}.network.vnet: extra keys not allowed"]),
    ("azure-network-int", ["azure"], [(f"{P}.network", 5)],
     [f"{P}.network: expected str or a dictionary"]),
    ("azure-rate-list", ["azure"], [(f"{P}.rate", [1])],
     [f"{P}.rate: expected float"]),
    ("azure-label-diskimage-undefined", ["azure"],
     [(f"{L0}.diskimage", "jammy")],
     [f"{L0}.diskimage: diskimage 'jammy' is not defined in provider "
      "'az-1'"]),
    # -- static ---------------------------------------------------------------
    ("static-node-labels-missing", ["static"], [(f"{NODE}.labels",)],
     [f"{NODE}.labels: required key not provided"]),
    ("static-node-label-undefined", ["static"],
     [(f"{NODE}.labels", ["small", "gpu"])],
     [f"{NODE}.labels[1]: label 'gpu' is not defined in top-level labels"]),
    ("static-node-label-string-undefined", ["static"],
     [(f"{NODE}.labels", "small gpu")],
     [f"{NODE}.labels: label 'gpu' is not defined in top-level labels"]),
    ("static-node-labels-int", ["static"], [(f"{NODE}.labels", 3)],
     [f"{NODE}.labels: expected str or a list of str"]),
    ("static-pool-labels", ["static"], [(f"{POOL}.labels", [])],
     [f"{POOL}.labels: extra keys not allowed"]),
    ("static-node-timeout-str", ["static"], [(f"{NODE}.timeout", "5")],
     [f"{NODE}.timeout: expected int"]),
    ("static-rate", ["static"], [(f"{P}.rate", 1.0)],
     [f"{P}.rate: extra keys not allowed"]),
]


@pytest.mark.parametrize("drivers,edits,expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config(drivers, edits, expected, valid_config, change):
    config = valid_config(*drivers)
    for edit in edits:
        change(config, *edit)
    result = validate_data(config)
    assert result.errors == expected
    assert result.config is None


def test_there_are_enough_cases():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("drivers", [["aws"], ["openstack"], ["azure"],
                                     ["static"]])
def test_unedited_samples_are_valid(drivers, valid_config, change):
    # Guards the table: each case's single edit is what makes it fail.
    result = validate_data(valid_config(*drivers))
    assert result.errors == []
    assert result.config is not None


def test_every_error_is_reported_not_just_the_first(valid_config, change):
    config = valid_config("aws", "openstack", "azure", "static")
    change(config, "zookeeper-timeout", 5)
    change(config, "labels[0].max-ready-age", "1h")
    change(config, "providers[0].pools[0].labels[0].key-name")
    change(config, "providers[0].pools[0].labels[1].key-name")
    change(config, "providers[1].pools[0].labels[0].cloud-image", "nope")
    change(config, "providers[1].rate", "slow")
    change(config, "providers[2].pools[0].max-servers")
    change(config, "providers[3].pools[0].nodes[0].labels", ["gpu"])
    result = validate_data(config)
    assert result.errors == [
        "labels[0].max-ready-age: expected int",
        "providers[0].pools[0].labels[0].key-name: required key not "
        "provided",
        "providers[0].pools[0].labels[1].key-name: required key not "
        "provided",
        "providers[1].pools[0].labels[0].cloud-image: cloud-image 'nope' is "
        "not defined in provider 'os-1'",
        "providers[1].rate: expected float",
        "providers[2].pools[0].max-servers: required key not provided",
        "providers[3].pools[0].nodes[0].labels[0]: label 'gpu' is not "
        "defined in top-level labels",
        "zookeeper-timeout: expected float",
    ]


def test_reference_errors_reported_alongside_type_errors(valid_config, change):
    # A type error elsewhere in the same label must not hide the reference
    # check: both come out in one run.
    config = valid_config("aws")
    change(config, f"{L0}.cloud-image", "debian")
    change(config, f"{L0}.volume-size", "big")
    assert validate_data(config).errors == [
        f"{L0}.cloud-image: cloud-image 'debian' is not defined in provider "
        "'aws-east'",
        f"{L0}.volume-size: expected int",
    ]


def test_cyclic_parents_report_each_member(valid_config, change):
    config = valid_config("static")
    config["diskimages"] = [{"name": "a", "parent": "b"},
                            {"name": "b", "parent": "a"},
                            {"name": "c", "parent": "a"}]
    assert validate_data(config).errors == [
        "diskimages[0].parent: parent chain is cyclic: a -> b -> a",
        "diskimages[1].parent: parent chain is cyclic: b -> a -> b",
    ]


def test_config_from_dict_raises_with_all_errors(valid_config, change):
    config = valid_config("aws")
    change(config, f"{P}.region-name")
    change(config, f"{L0}.key-name")
    with pytest.raises(ConfigError) as info:
        config_from_dict(config)
    assert info.value.errors == [
        f"{L0}.key-name: required key not provided",
        f"{P}.region-name: required key not provided",
    ]
    assert str(info.value) == "\n".join(info.value.errors)


def test_yaml_syntax_error_names_file_line_and_column(write_yaml):
    path = write_yaml("labels:\n  - name: a\n   min-ready: 1\n")
    result = validate_config(path)
    assert result.errors == [
        f"{path}:3:4: YAML syntax error: while parsing a block collection: "
        "expected <block end>, but found '<block mapping start>'"]
    assert result.config is None


def test_yaml_syntax_error_does_not_echo_the_text(write_yaml):
    path = write_yaml('zookeeper-tls:\n  key: "s3cr3t-value\n')
    result = validate_config(path)
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{path}:3:1: YAML syntax error:")
    assert "s3cr3t" not in result.errors[0]


def test_secrets_are_not_echoed_in_type_errors(valid_config, change):
    config = valid_config("azure")
    change(config, f"{P}.cloud-images[0].password", 987654321)
    change(config, f"{P}.auth-path", 123456789)
    errors = validate_data(config).errors
    assert errors == [f"{P}.auth-path: expected str",
                      f"{P}.cloud-images[0].password: expected str"]
    assert not any("987654321" in e or "123456789" in e for e in errors)


def test_empty_and_non_mapping_files(write_yaml):
    empty = write_yaml("", "empty.yaml")
    listing = write_yaml("- a\n", "list.yaml")
    assert validate_config(empty).errors == [f"{empty}: file is empty"]
    assert validate_config(listing).errors == [
        f"{listing}: expected a dictionary"]
