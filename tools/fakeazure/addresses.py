"""IP address pools: private addresses per subnet, public ones per family.

Azure reserves the first four addresses and the last one of every subnet,
so the first NIC in ``10.0.0.0/24`` gets ``10.0.0.4``.  Public addresses come
from ``Behaviour.public_ipv4_network`` (default ``198.18.0.0/15``, the
benchmarking range: never routed, so nothing ever connects to a stranger) or
are all one fixed address such as ``127.0.0.1`` for keyscan tests; a fixed
address is shared, so it is never marked used.  Runs under the store lock.
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Union

from .store import ArmError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class AddressBook:
    """Hands out and takes back addresses; one cursor per pool."""

    def __init__(self) -> None:
        self._used: dict[str, set[str]] = {}
        self._cursor: dict[str, int] = {}

    def allocate(self, pool: str, first: int = 4, last_reserved: int = 1,
                 fixed: Optional[str] = None) -> str:
        if fixed:
            return fixed
        network: Network = ipaddress.ip_network(pool, strict=False)
        used = self._used.setdefault(str(network), set())
        span = network.num_addresses - first - last_reserved
        if span <= 0 or len(used) >= span:
            raise ArmError(400, "SubnetIsFull",
                           f"Subnet with address prefix {network} does not "
                           "have enough capacity for 1 IP addresses.")
        cursor = self._cursor.get(str(network), 0)
        while True:
            candidate = str(network[first + cursor % span])
            cursor += 1
            if candidate not in used:
                break
        self._cursor[str(network)] = cursor % span
        used.add(candidate)
        return candidate

    def release(self, address: Optional[str]) -> None:
        if not address:
            return
        ip = ipaddress.ip_address(address)
        for pool, used in self._used.items():
            if ip in ipaddress.ip_network(pool) and address in used:
                used.discard(address)
                return


def subnet_prefix(subnet: dict, version: str) -> str:
    """The subnet's prefix for ``IPv4``/``IPv6``; fd00::/64 if it has none."""
    props = subnet.get("properties", {})
    prefixes = list(props.get("addressPrefixes") or [])
    if props.get("addressPrefix"):
        prefixes.insert(0, props["addressPrefix"])
    want = 6 if version.lower() == "ipv6" else 4
    for prefix in prefixes:
        if ipaddress.ip_network(prefix, strict=False).version == want:
            return prefix
    if want == 6:
        return "fd00:fa4e::/64"
    raise ArmError(400, "InvalidRequestFormat",
                   f"Subnet {subnet.get('id')} has no IPv4 address prefix.")
