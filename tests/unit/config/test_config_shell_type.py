"""Where a diskimage label's ``shell-type`` comes from, per driver.

As upstream: OpenStack provider ``diskimages`` entries take ``shell-type``
(like ``username`` and ``python-path``) from the top-level diskimage; AWS
and Azure entries have their own ``shell-type`` and ignore the top-level
one (which only the builder reads there).
"""

from __future__ import annotations

from nodepool.config.validate import validate_data


def _disk(data, provider):
    return validate_data(data).config.providers[provider].diskimages["jammy"]


def test_openstack_diskimage_takes_the_top_level_shell_type(
        valid_config, change):
    data = valid_config("openstack")
    change(data, "diskimages[0].shell-type", "cmd")
    assert _disk(data, "os-1").shell_type == "cmd"
    change(data, "diskimages[0].shell-type")
    assert _disk(data, "os-1").shell_type is None


def test_aws_diskimage_has_its_own_shell_type(valid_config, change):
    data = valid_config("aws")
    change(data, "diskimages[0].shell-type", "cmd")
    assert _disk(data, "aws-east").shell_type is None
    change(data, "providers[0].diskimages[0].shell-type", "powershell")
    assert _disk(data, "aws-east").shell_type == "powershell"
