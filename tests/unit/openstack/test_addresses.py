"""Server addresses as upstream Nodepool (openstacksdk) reports them."""

from __future__ import annotations

from types import SimpleNamespace as NS

from nodepool.driver.openstack.addresses import (
    AddressRules, Addresses, classify_networks, needs_floating_ip,
    server_addresses, with_floating_ip)

from tests.unit.openstack.helpers import server

RULES = AddressRules(external=("public",), internal=("private",))


def addr(ip, kind="fixed", mac="fa:16:3e:00:00:01"):
    version = 6 if ":" in ip else 4
    entry = {"version": version, "addr": ip, "OS-EXT-IPS:type": kind}
    if mac:
        entry["OS-EXT-IPS-MAC:mac_addr"] = mac
    return entry


def record(access4="", access6="", **networks):
    return server(addresses=networks, accessIPv4=access4,
                  accessIPv6=access6)


def test_private_only_has_no_public_and_no_interface():
    assert server_addresses(record(private=[addr("10.0.0.5")]), RULES) == \
        Addresses(public_v4="", private_v4="10.0.0.5", public_v6="",
                  interface_ip="")


def test_floating_ip_is_public_and_its_fixed_address_private():
    r = record(private=[addr("10.0.0.4", mac="m1"),
                        addr("10.0.0.5", mac="m2"),
                        addr("172.24.0.9", "floating", mac="m2")])
    found = server_addresses(r, RULES)
    assert found.public_v4 == found.interface_ip == "172.24.0.9"
    assert found.private_v4 == "10.0.0.5"      # the one behind the FIP


def test_access_ipv4_wins_even_when_private():
    r = record(access4="10.9.9.9", private=[addr("172.24.0.9",
                                                 "floating")])
    assert server_addresses(r, RULES).public_v4 == "10.9.9.9"


def test_external_network_then_floating_then_public_name_then_routable():
    on_ext = record(ext2=[addr("172.30.0.7")],
                    private=[addr("172.24.0.9", "floating")])
    rules = AddressRules(external=("ext2",), internal=("private",))
    assert server_addresses(on_ext, rules).public_v4 == "172.30.0.7"
    named = record(public=[addr("192.168.5.5")])
    assert server_addresses(named, AddressRules()).public_v4 == \
        "192.168.5.5"
    routable = record(provider=[addr("10.1.1.1"), addr("93.184.216.34")])
    assert server_addresses(routable, AddressRules()).public_v4 == \
        "93.184.216.34"
    # shared address space is not "private" to Python: upstream takes it
    cgnat = record(provider=[addr("100.64.0.8")])
    assert server_addresses(cgnat, AddressRules()).public_v4 == "100.64.0.8"


def test_private_from_internal_networks_else_a_network_named_private():
    r = record(tenant=[addr("192.168.0.3")])
    assert server_addresses(r, AddressRules(internal=("tenant",))
                            ).private_v4 == "192.168.0.3"
    assert server_addresses(r, AddressRules()).private_v4 == ""
    assert server_addresses(record(private=[addr("10.0.0.5")]),
                            AddressRules()).private_v4 == "10.0.0.5"


def test_ipv6_access_first_and_none_with_force_ipv4():
    r = record(access6="2001:db8::99",
               private=[addr("10.0.0.5"), addr("2001:db8::5")])
    assert server_addresses(r, RULES).public_v6 == "2001:db8::99"
    r = record(private=[addr("10.0.0.5"), addr("2001:db8::5")])
    assert server_addresses(r, RULES).public_v6 == "2001:db8::5"
    forced = AddressRules(force_ipv4=True, local_ipv6=True)
    assert server_addresses(r, forced).public_v6 == ""


def test_interface_prefers_ipv6_only_when_this_host_has_ipv6():
    r = record(private=[addr("10.0.0.5"), addr("2001:db8::5"),
                        addr("172.24.0.9", "floating")])
    assert server_addresses(r, RULES).interface_ip == "172.24.0.9"
    v6 = AddressRules(external=("public",), internal=("private",),
                      local_ipv6=True)
    assert server_addresses(r, v6).interface_ip == "2001:db8::5"
    forced = AddressRules(local_ipv6=True, force_ipv4=True)
    assert server_addresses(r, forced).interface_ip == "172.24.0.9"


def test_private_cloud_and_default_interface():
    r = record(private=[addr("10.0.0.5"), addr("172.24.0.9", "floating")],
               other=[addr("192.168.7.7"), addr("2001:db8::7")])
    private = AddressRules(internal=("private",), private=True)
    assert server_addresses(r, private).interface_ip == "10.0.0.5"
    default = AddressRules(default_network="other")
    assert server_addresses(r, default).interface_ip == "192.168.7.7"
    default6 = AddressRules(default_network="other", local_ipv6=True)
    assert server_addresses(r, default6).interface_ip == "2001:db8::7"


def test_use_external_and_internal_network_off():
    r = record(private=[addr("10.0.0.5"), addr("172.24.0.9", "floating")])
    off = AddressRules(internal=("private",), use_external=False,
                       use_internal=False)
    assert server_addresses(r, off) == Addresses()


def test_needs_floating_ip_is_upstreams_rule():
    assert needs_floating_ip(record(private=[addr("10.0.0.5")]), RULES)
    # a public IPv6 address does not make an IPv4 floating IP unneeded
    assert needs_floating_ip(record(private=[addr("10.0.0.5"),
                                             addr("2001:db8::5")]), RULES)
    assert not needs_floating_ip(record(private=[
        addr("10.0.0.5"), addr("172.24.0.9", "floating")]), RULES)
    assert not needs_floating_ip(record(public=[addr("172.24.0.3")]),
                                 RULES)
    assert not needs_floating_ip(record(private=[addr("10.0.0.5")]),
                                 AddressRules(internal=("private",),
                                              private=True))
    assert not needs_floating_ip(record(), RULES)       # no address at all


def test_with_floating_ip_adds_it_next_to_its_fixed_address():
    r = record(private=[addr("10.0.0.5", mac="m1")])
    shown = with_floating_ip(r, "172.24.0.9")
    assert shown["addresses"]["private"][-1] == {
        "version": 4, "addr": "172.24.0.9", "OS-EXT-IPS:type": "floating",
        "OS-EXT-IPS-MAC:mac_addr": "m1"}
    assert r["addresses"]["private"] == [addr("10.0.0.5", mac="m1")]
    assert with_floating_ip(shown, "172.24.0.9") is shown


def test_classify_networks_like_openstacksdk():
    nets = [NS(id="1", name="private", external=False, physical=False),
            NS(id="2", name="public", external=True, physical=False),
            NS(id="3", name="provider", external=False, physical=True),
            NS(id="4", name="routed", external=False, physical=False)]
    assert classify_networks(nets, set(), set()) == (
        ("public", "provider"), ("private", "routed"))
    assert classify_networks(nets, {"4"}, {"provider"}) == (
        ("public", "routed"), ("private", "provider"))
