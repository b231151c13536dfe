"""A server's addresses, judged the way upstream Nodepool reports them.

Upstream takes a node's addresses from openstacksdk's server expansion
(``public_v4``, ``private_v4``, ``public_v6``, ``interface_ip``) and then
writes the public IPv4 as ``private_ipv4`` when there is no private one.
Zuul jobs see these values, so ``server_addresses`` follows the same
rules, from the server record and ``AddressRules`` (the cloud's networks
and the clouds.yaml flags), without any cloud call:

- networks are external (for IPv4) when clouds.yaml says they route
  externally, or when they are ``router:external`` or provider (physical)
  networks that clouds.yaml does not call internal; internal are those
  clouds.yaml calls internal, or that are neither of those and not called
  external; both in the cloud's listing order;
- public IPv4: ``accessIPv4`` if set; else an address on an external
  network; else any floating address; else one on a network named
  ``public``; else the first IPv4 address that is not a private one;
- private IPv4: a fixed address on an internal network (the one behind
  the floating IP, when there is one), else any address there, else one
  on a network named ``private``;
- public IPv6: ``accessIPv6`` if set, else the first IPv6 address; none
  at all with clouds.yaml ``force_ipv4``;
- interface IP: an address on the clouds.yaml ``default_interface``
  network (IPv6 first when IPv6 is preferred); else with clouds.yaml
  ``private`` the private address; else the public IPv6 address when IPv6
  is preferred -- this host has a global IPv6 address of its own and
  ``force_ipv4`` is off -- else the public IPv4 address;
- within one of those steps floating addresses come before fixed ones and
  the first wins (upstream also probes port 22 when several remain;
  the result is the first unless a later one answers and the first not);
- a missing address is ``""``, as upstream writes it.

``needs_floating_ip`` is upstream's auto-floating-ip rule: a server gets
one when it has no public IPv4 and no floating address but a fixed one,
and the cloud is not ``private`` (a public IPv6 address does not count).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["AddressRules", "Addresses", "server_addresses",
           "needs_floating_ip", "with_floating_ip", "localhost_has_ipv6",
           "classify_networks"]

log = logging.getLogger(__name__)

Record = Mapping[str, Any]


@dataclass(frozen=True)
class AddressRules:
    #: IPv4 network names that route externally / do not, listing order
    external: tuple[str, ...] = ()
    internal: tuple[str, ...] = ()
    #: clouds.yaml ``default_interface`` network
    default_network: str | None = None
    #: clouds.yaml ``private``: the private address is the interface
    private: bool = False
    force_ipv4: bool = False
    #: this host has IPv6 connectivity (openstacksdk's test)
    local_ipv6: bool = False
    use_external: bool = True
    use_internal: bool = True

    @property
    def prefer_ipv6(self) -> bool:
        return self.local_ipv6 and not self.force_ipv4


@dataclass(frozen=True)
class Addresses:
    public_v4: str = ""
    private_v4: str = ""          # as found; no fallback to public_v4
    public_v6: str = ""
    interface_ip: str = ""


def classify_networks(networks: Iterable[Any], hint_external: set[str],
                      hint_internal: set[str]
                      ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(external, internal) IPv4 network names of ``networks`` (objects
    with ``id``, ``name``, ``external``, ``physical``)."""
    external: list[str] = []
    internal: list[str] = []
    for net in networks:
        keys = {net.name, net.id}
        routed = net.external or net.physical
        if keys & hint_external or (routed and not keys & hint_internal):
            external.append(net.name)
        if keys & hint_internal or (not routed and
                                    not keys & hint_external):
            internal.append(net.name)
    return tuple(external), tuple(internal)


def localhost_has_ipv6() -> bool:
    """Whether some interface of this host has an IPv6 address that is
    neither loopback nor link-local (openstacksdk's test)."""
    try:
        import psutil
        found = [a.address for addrs in psutil.net_if_addrs().values()
                 for a in addrs if a.family == socket.AF_INET6]
    except Exception:  # no psutil, or no interface list: assume none
        log.debug("Cannot list interfaces for IPv6", exc_info=True)
        return False
    for address in found:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            continue
        if not ip.is_link_local and not ip.is_loopback:
            return True
    return False


def _entries(record: Record, version: int = 4, tag: str | None = None,
             network: str | None = None, mac: str | None = None):
    for name, entries in (record.get("addresses") or {}).items():
        if network is not None and name != network:
            continue
        for entry in entries or []:
            if not entry.get("addr"):
                continue
            if tag is not None and entry.get("OS-EXT-IPS:type") != tag:
                continue
            if mac is not None and \
                    entry.get("OS-EXT-IPS-MAC:mac_addr") != mac:
                continue
            if entry.get("version") == version:
                yield entry


def _pick(record: Record, **kw) -> str:
    """Floating first, then fixed; the first one; "" if none."""
    found = list(_entries(record, **kw))
    for entry in found:
        if entry.get("OS-EXT-IPS:type") == "floating":
            return entry["addr"]
    return found[0]["addr"] if found else ""


def _public_v4(record: Record, rules: AddressRules) -> str:
    if not rules.use_external:
        return ""
    if record.get("accessIPv4"):
        return str(record["accessIPv4"])
    for network in rules.external:
        found = _pick(record, network=network)
        if found:
            return found
    found = _pick(record, tag="floating") or _pick(record, network="public")
    if found:
        return found
    for entries in (record.get("addresses") or {}).values():
        for entry in entries or []:
            try:
                ip = ipaddress.ip_address(entry.get("addr") or "")
            except ValueError:
                continue
            if ip.version == 4 and not ip.is_private:
                return str(ip)
    return ""


def _private_v4(record: Record, rules: AddressRules) -> str:
    if not rules.use_internal:
        return ""
    floating = list(_entries(record, tag="floating"))
    mac = floating[0].get("OS-EXT-IPS-MAC:mac_addr") if floating else None
    for network in rules.internal:
        found = _pick(record, network=network, tag="fixed", mac=mac)
        if found:
            return found
    for network in rules.internal:
        found = _pick(record, network=network, mac=mac)
        if found:
            return found
    return (_pick(record, network="private", tag="fixed", mac=mac)
            or _pick(record, network="private"))


def _public_v6(record: Record, rules: AddressRules) -> str:
    if rules.force_ipv4:
        return ""
    if record.get("accessIPv6"):
        return str(record["accessIPv6"])
    return _pick(record, version=6)


def server_addresses(record: Record, rules: AddressRules) -> Addresses:
    public_v4 = _public_v4(record, rules)
    private_v4 = _private_v4(record, rules)
    public_v6 = _public_v6(record, rules)
    interface = ""
    if rules.default_network:
        for version in ((6, 4) if rules.prefer_ipv6 else (4,)):
            interface = _pick(record, network=rules.default_network,
                              version=version)
            if interface:
                break
    if not interface:
        if rules.private and private_v4:
            interface = private_v4
        elif public_v6 and rules.prefer_ipv6:
            interface = public_v6
        else:
            interface = public_v4
    return Addresses(public_v4, private_v4, public_v6, interface)


def needs_floating_ip(record: Record, rules: AddressRules) -> bool:
    found = server_addresses(record, rules)
    if found.public_v4 or any(_entries(record, tag="floating")):
        return False
    has_fixed = any(entry.get("OS-EXT-IPS:type") == "fixed"
                    for entries in (record.get("addresses") or {}).values()
                    for entry in entries or [])
    if not found.private_v4 and not has_fixed:
        return False
    return not rules.private


def with_floating_ip(record: Record, address: str,
                     fixed: str | None = None) -> Record:
    """``record`` showing floating IP ``address`` (just attached, which
    Nova may not list yet) next to its ``fixed`` address (else the first
    fixed IPv4 address), as openstacksdk adds it from Neutron."""
    addresses = record.get("addresses") or {}
    if any(entry.get("addr") == address
           for entries in addresses.values() for entry in entries or []):
        return record
    target = None
    for name, entries in addresses.items():
        for entry in entries or []:
            if entry.get("version") == 4 and \
                    entry.get("OS-EXT-IPS:type") != "floating" and \
                    (fixed is None or entry.get("addr") == fixed):
                target = (name, entry)
                break
        if target:
            break
    copy = {name: list(entries or []) for name, entries in addresses.items()}
    name, entry = target if target else ("", {})
    floating = {"version": 4, "addr": address, "OS-EXT-IPS:type": "floating"}
    if entry.get("OS-EXT-IPS-MAC:mac_addr"):
        floating["OS-EXT-IPS-MAC:mac_addr"] = entry["OS-EXT-IPS-MAC:mac_addr"]
    copy.setdefault(name, []).append(floating)
    return {**record, "addresses": copy}
