"""Inventory: the cloud's flavors, images, networks and zones, cached.

Creates, quota and label checks all need the same few lists; each is kept
in the driver's one TTL cache (``nodepool.driver.ttlcache``) for ``ttl``
(5 minutes): fetched by whichever thread needs it first while the others
get the last answer, or wait for the first one (single flight), so a burst
of 100 creates costs one flavor list, not 100.

Flavor choice follows upstream: ``flavor-name`` alone names a flavor
exactly (by name or id); ``min-ram`` picks the smallest enabled flavor with
at least that much RAM (fewest vCPUs, then name, break ties), and a
``flavor-name`` given with it filters candidates by substring.

Failure story: the cache's rule -- a failed refresh keeps serving the
previous answer for up to ``MAX_STALE`` (an hour), logged, so a cloud
hiccup does not fail labels that worked a minute ago; with nothing cached
the classified error is raised; either way the cloud is asked again only
after ``RETRY_DELAY`` (10 s), so a sick cloud is not hammered by every pool
worker's question.  Something that does not exist (a flavor, image or
network name) is a ``ConfigurationError``: the label can never launch
until the cloud or config changes, and the entry is re-checked after
``ttl``.

Threads: any; the caches lock, and fetches run on the asking thread (a
create-pool or pool worker, never the provider loop, which only peeks).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from nodepool.driver import errors
from nodepool.driver.openstack.addresses import (AddressRules,
                                                 classify_networks,
                                                 localhost_has_ipv6)
from nodepool.driver.ttlcache import RETRY_DELAY, TtlCache, TtlValue

__all__ = ["Inventory", "Flavor", "Network", "pick_flavor", "RETRY_DELAY"]

log = logging.getLogger(__name__)

TTL = 300.0
MAX_STALE = 3600.0


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    ram: int
    vcpus: int
    disabled: bool = False


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    external: bool = False
    default: bool = False
    #: a provider network (``provider:physical_network`` set)
    physical: bool = False


def pick_flavor(flavors: Iterable[Flavor], name: str | None,
                min_ram: int | None) -> Flavor:
    """The flavor a label asks for; ConfigurationError if there is none."""
    flavors = [f for f in flavors if not f.disabled]
    if min_ram:
        fitting = sorted((f for f in flavors if f.ram >= min_ram
                          and (not name or name in f.name)),
                         key=lambda f: (f.ram, f.vcpus, f.name))
        if fitting:
            return fitting[0]
        raise errors.ConfigurationError(
            f"no flavor with at least {min_ram} MiB RAM"
            + (f" matching {name!r}" if name else ""),
            stat_key="error.config")
    for flavor in flavors:
        if name in (flavor.name, flavor.id):
            return flavor
    raise errors.ConfigurationError(f"no flavor named {name!r}",
                                    stat_key="error.config")


def _hint(region, method: str):
    getter = getattr(region, method, None)
    if getter is None:
        return None
    try:
        return getter()
    except Exception:  # a malformed clouds.yaml hint is not fatal
        log.warning("Ignoring clouds.yaml network hint %s", method,
                    exc_info=True)
        return None


class Inventory:
    """Cached lookups against one cloud region (``api``: OpenStackApi)."""

    def __init__(self, api, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.ttl = ttl
        # clouds.yaml network hints (``networks:`` of the cloud entry), as
        # openstacksdk's own server-address logic honours them.
        region = getattr(api, "cloud_region", None)
        self.hint_external = set(_hint(region, "get_external_ipv4_networks")
                                 or [])
        self.hint_internal = set(_hint(region, "get_internal_ipv4_networks")
                                 or [])
        self.nat_destination = _hint(region, "get_nat_destination")
        self.default_network = _hint(region, "get_default_network")
        # clouds.yaml flags openstacksdk's address logic honours
        config = getattr(region, "config", None)
        config = config if isinstance(config, dict) else {}
        self.private = bool(config.get("private", False))
        self.force_ipv4 = getattr(region, "force_ipv4", False) is True
        self.use_external = bool(config.get("use_external_network", True))
        self.use_internal = bool(config.get("use_internal_network", True))
        # as openstacksdk, once per connection: does this host have IPv6?
        self.local_ipv6 = (not self.force_ipv4) and localhost_has_ipv6()
        def cached(what: str, fetch: Callable[[], Any]) -> TtlValue:
            return TtlValue(what, fetch, ttl, max_stale=MAX_STALE,
                            clock=clock)
        self.flavors = cached("flavors", self._fetch_flavors)
        self.networks = cached("networks", self._fetch_networks)
        self.zones = cached("availability zones", self._fetch_zones)
        self.images: TtlCache[str, str | None] = TtlCache(
            "images by name", self._fetch_image, ttl, max_stale=MAX_STALE,
            clock=clock)

    # -- fetchers (run on whichever worker thread asked first) ---------------
    def _fetch_flavors(self) -> list[Flavor]:
        found = self.api.read("list flavors", lambda: list(
            self.api.conn.compute.flavors(details=True)))
        return [Flavor(id=str(f.id), name=f.name, ram=int(f.ram or 0),
                       vcpus=int(f.vcpus or 0),
                       disabled=bool(getattr(f, "is_disabled", False)))
                for f in found]

    def _fetch_networks(self) -> list[Network]:
        found = self.api.read("list networks", lambda: list(
            self.api.conn.network.networks()))
        return [Network(id=n.id, name=n.name,
                        external=bool(n.is_router_external),
                        default=bool(getattr(n, "is_default", False)),
                        physical=bool(getattr(
                            n, "provider_physical_network", None)))
                for n in found]

    def _fetch_zones(self) -> list[str]:
        try:
            found = self.api.read("list availability zones", lambda: list(
                self.api.conn.compute.availability_zones()))
        except errors.LaunchError as e:
            # Listing zones is policy-restricted in some clouds: let Nova
            # choose (a nodeset may then span zones, as upstream).
            log.warning("Cannot list availability zones: %s", e)
            return []
        return sorted(z.name for z in found
                      if (z.state or {}).get("available", True))

    def _fetch_image(self, name: str) -> str | None:
        found = self.api.read("find image", lambda: list(
            self.api.conn.image.images(name=name)))
        active = [i for i in found if (i.status or "active") == "active"]
        return (active or found)[0].id if found else None

    # -- lookups -------------------------------------------------------------
    def flavor(self, settings) -> Flavor:
        return pick_flavor(self.flavors.get(), settings.get("flavor-name"),
                           settings.get("min-ram"))

    def image_id_by_name(self, name: str) -> str | None:
        return self.images.get(name)

    def network_ids(self, names: Iterable[str]) -> list[str]:
        """Ids of the named networks; none named: the clouds.yaml
        ``default_interface`` network, else [] (Nova's ``auto``)."""
        names = list(names)
        if not names and self.default_network:
            names = [self.default_network]
        networks = self.networks.get()
        ids = []
        for name in names:
            match = next((n for n in networks if name in (n.name, n.id)),
                         None)
            if match is None:
                raise errors.ConfigurationError(
                    f"no network named {name!r}", stat_key="error.config")
            ids.append(match.id)
        return ids

    def external_network(self) -> Network | None:
        """The network floating IPs come from (the default one first)."""
        external = [n for n in self.networks.get() if n.external]
        external.sort(key=lambda n: (not n.default, n.name))
        return external[0] if external else None

    def nat_network_id(self) -> str | None:
        """The clouds.yaml ``nat_destination`` network's id, if any."""
        if not self.nat_destination:
            return None
        match = next((n for n in self.networks.get()
                      if self.nat_destination in (n.name, n.id)), None)
        return match.id if match else None

    def address_rules(self, fetch: bool = True) -> AddressRules:
        """How this cloud's server addresses are judged (see
        ``addresses``).  ``fetch=False`` never calls the cloud (for the
        provider loop): it uses whatever network list is cached, or
        only the clouds.yaml hints before the first one."""
        networks = (self.networks.get() if fetch
                    else self.networks.peek()) or []
        external, internal = classify_networks(
            networks, self.hint_external, self.hint_internal)
        known = {key for n in networks for key in (n.id, n.name)}
        external += tuple(sorted(self.hint_external - known))
        internal += tuple(sorted(self.hint_internal - known))
        return AddressRules(
            external=external, internal=internal,
            default_network=self.default_network, private=self.private,
            force_ipv4=self.force_ipv4, local_ipv6=self.local_ipv6,
            use_external=self.use_external, use_internal=self.use_internal)

    def flavor_by_id(self, flavor_id: Any) -> Flavor | None:
        return next((f for f in self.flavors.get()
                     if f.id == str(flavor_id)), None)
