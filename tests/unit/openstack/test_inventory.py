"""Flavor choice and the cached inventory lookups."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from nodepool.driver import errors
from nodepool.driver.openstack.inventory import (
    MAX_STALE, RETRY_DELAY, TTL, Flavor, Inventory, pick_flavor)

FLAVORS = [Flavor("1", "m1.tiny", 512, 1), Flavor("2", "m1.small", 2048, 1),
           Flavor("3", "m1.medium", 4096, 2),
           Flavor("9", "big.medium", 4096, 1),
           Flavor("4", "m1.large", 8192, 4),
           Flavor("5", "gone.huge", 65536, 16, disabled=True)]


def test_flavor_by_name_or_id():
    assert pick_flavor(FLAVORS, "m1.small", None).id == "2"
    assert pick_flavor(FLAVORS, "4", None).name == "m1.large"
    with pytest.raises(errors.ConfigurationError):
        pick_flavor(FLAVORS, "m1.nope", None)


def test_min_ram_picks_smallest_then_fewest_cpus():
    assert pick_flavor(FLAVORS, None, 3000).name == "big.medium"
    assert pick_flavor(FLAVORS, None, 2048).name == "m1.small"
    # a name given with min-ram filters by substring
    assert pick_flavor(FLAVORS, "m1", 3000).name == "m1.medium"
    with pytest.raises(errors.ConfigurationError):
        pick_flavor(FLAVORS, None, 20000)    # only a disabled one fits


class Api:
    """Stand-in OpenStackApi: ``read`` runs the call, ``conn`` answers."""

    def __init__(self):
        self.reads = []
        self.conn = NS(
            compute=NS(flavors=lambda details: [
                NS(id=2, name="m1.small", ram=2048, vcpus=1,
                   is_disabled=False)],
                availability_zones=lambda: [
                    NS(name="b", state={"available": True}),
                    NS(name="a", state={"available": True}),
                    NS(name="down", state={"available": False})]),
            network=NS(networks=lambda: [
                NS(id="n1", name="private", is_router_external=False,
                   is_default=False),
                NS(id="n2", name="ext2", is_router_external=True,
                   is_default=False),
                NS(id="n3", name="public", is_router_external=True,
                   is_default=True)]),
            image=NS(images=lambda name: [
                NS(id="i-old", status="deleted"),
                NS(id="i-1", status="active")] if name == "jammy" else []))

    def read(self, operation, fn, *args, **kw):
        self.reads.append(operation)
        return fn(*args, **kw)


def test_inventory_lookups_are_cached(clock):
    api = Api()
    inv = Inventory(api, clock=clock)
    assert inv.flavor({"flavor-name": "m1.small"}).id == "2"
    assert inv.flavor({"min-ram": 1000}).id == "2"
    assert inv.network_ids(["public", "n1"]) == ["n3", "n1"]
    with pytest.raises(errors.ConfigurationError):
        inv.network_ids(["nope"])
    assert inv.external_network().name == "public"   # the default one
    rules = inv.address_rules()
    assert (rules.external, rules.internal) == (("ext2", "public"),
                                                ("private",))
    assert inv.nat_network_id() is None
    assert inv.zones.get() == ["a", "b"]
    assert inv.image_id_by_name("jammy") == "i-1"
    assert inv.image_id_by_name("jammy") == "i-1"
    assert inv.image_id_by_name("other") is None
    assert sorted(api.reads) == sorted([
        "list flavors", "list networks", "list availability zones",
        "find image", "find image"])
    assert inv.flavor_by_id(2).name == "m1.small"


def test_zone_listing_refused_means_nova_picks(clock):
    api = Api()

    def refuse():
        raise errors.LaunchError("403 policy")
    api.conn.compute.availability_zones = refuse
    assert Inventory(api, clock=clock).zones.get() == []


class Region:
    """clouds.yaml ``networks:`` hints, as openstacksdk's CloudRegion
    reports them."""

    def get_external_ipv4_networks(self):
        return ["provider-net"]

    def get_internal_ipv4_networks(self):
        return ["n1"]

    def get_nat_destination(self):
        return "private"

    def get_default_network(self):
        return "private"


def test_clouds_yaml_network_hints(clock):
    api = Api()
    api.cloud_region = Region()
    inv = Inventory(api, clock=clock)
    rules = inv.address_rules()
    assert rules.external == ("ext2", "public", "provider-net")
    assert rules.internal == ("private",)
    assert rules.default_network == "private"
    assert not rules.private and not rules.force_ipv4
    assert inv.address_rules(fetch=True) == inv.address_rules(fetch=False)
    assert inv.nat_network_id() == "n1"
    assert inv.network_ids([]) == ["n1"]          # default_interface
    assert inv.network_ids(["public"]) == ["n3"]


def test_broken_hint_is_ignored(clock):
    api = Api()

    class Broken(Region):
        def get_nat_destination(self):
            raise ValueError("two nat destinations")
    api.cloud_region = Broken()
    assert Inventory(api, clock=clock).nat_destination is None


def test_clouds_yaml_address_flags(clock):
    api = Api()
    api.cloud_region = NS(config={"private": True,
                                  "use_external_network": False},
                          force_ipv4=True)
    rules = Inventory(api, clock=clock).address_rules()
    assert rules.private and rules.force_ipv4 and not rules.use_external
    assert rules.use_internal
    assert not rules.local_ipv6            # force_ipv4: IPv6 never preferred


def test_inventory_follows_the_cache_rule(clock):
    """Refreshed after TTL; a failed refresh keeps the last list for up to
    MAX_STALE and asks again only after RETRY_DELAY (ttlcache's rule)."""
    api = Api()
    inv = Inventory(api, clock=clock)
    assert inv.flavor({"flavor-name": "m1.small"}).id == "2"
    clock.advance(TTL)
    good = api.conn.compute.flavors

    def down(details):
        raise errors.TransientError("503")
    api.conn.compute.flavors = down
    assert inv.flavor({"flavor-name": "m1.small"}).id == "2"   # stale
    assert inv.flavor({"flavor-name": "m1.small"}).id == "2"
    assert api.reads.count("list flavors") == 2
    clock.advance(MAX_STALE)
    with pytest.raises(errors.TransientError):
        inv.flavor({"flavor-name": "m1.small"})
    api.conn.compute.flavors = good
    clock.advance(RETRY_DELAY)
    assert inv.flavor({"flavor-name": "m1.small"}).id == "2"
    assert api.reads.count("list flavors") == 4
    inv.images.invalidate("jammy")              # e.g. after an upload
    assert inv.image_id_by_name("jammy") == "i-1"
