"""LeakFinder: which ports and floating IPs are reported, when, and the
last check before deleting."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.instance import Resource
from nodepool.driver.openstack.leaks import FLOATING_IPS, PORTS, LeakFinder

from tests.unit.openstack.fakeconn import FakeApi, fip, port


class LeakAdapter:
    def __init__(self):
        self.api = FakeApi()
        self.provider = type("P", (), {"name": "os"})()
        self.live: set[str] = set()

    def server_ids(self, max_age=2.0):
        return set(self.live)


def _finder(clock, interval=600, fips=False):
    adapter = LeakAdapter()
    return adapter, LeakFinder(adapter, interval, fips, clock=clock)


def test_orphan_down_compute_ports_are_candidates(clock):
    adapter, finder = _finder(clock)
    adapter.live = {"srv-live"}
    adapter.api.network.ports_list = [
        port("leak", device_id="gone"), port("unbound", device_id=""),
        port("building", device_id="srv-live"),
        port("dhcp", owner="network:dhcp"),
        port("up", device_id="gone", status="ACTIVE")]
    found = finder.resources()
    assert sorted(r.id for r in found) == ["leak", "unbound"]
    assert {r.type for r in found} == {PORTS}
    assert all(r.provider_name == "os" and r.node_id is None for r in found)


def test_ports_are_scanned_once_per_interval(clock):
    adapter, finder = _finder(clock, interval=600)
    adapter.api.network.ports_list = [port("leak", device_id="gone")]
    assert [r.id for r in finder.resources()] == ["leak"]
    adapter.api.network.ports_list.append(port("new", device_id="gone"))
    assert [r.id for r in finder.resources()] == ["leak"]   # cached scan
    assert adapter.api.reads == ["list down ports"]
    clock.advance(600)
    assert sorted(r.id for r in finder.resources()) == ["leak", "new"]


def test_disabled_cleanups_list_nothing(clock):
    adapter, finder = _finder(clock, interval=0, fips=False)
    adapter.api.network.ports_list = [port("leak", device_id="gone")]
    adapter.api.network.ips_list = [fip("f", "1.2.3.4")]
    assert finder.resources() == []
    assert adapter.api.reads == []


def test_unbound_floating_ips_are_candidates(clock):
    adapter, finder = _finder(clock, interval=0, fips=True)
    adapter.api.network.ips_list = [fip("loose", "1.2.3.4"),
                                    fip("bound", "1.2.3.5", "p1")]
    assert [r.id for r in finder.resources()] == ["loose"]


def test_port_reused_since_the_scan_is_not_deleted(clock):
    adapter, finder = _finder(clock)
    net = adapter.api.network
    net.ports_list = [port("p1", device_id="gone"),
                      port("p2", device_id="gone"),
                      port("p3", device_id="gone")]
    candidates = {r.id: r for r in finder.resources()}
    net.ports_list[0].status = "ACTIVE"             # bound again
    net.ports_list[1].device_id = "srv-new"
    adapter.live.add("srv-new")
    for pid in ("p1", "p2", "p3"):
        finder.delete(candidates[pid])
    assert net.deleted == [("port", "p3")]
    # a port deleted by someone else meanwhile is simply done
    finder.delete(Resource(type=PORTS, id="vanished"))


def test_floating_ip_bound_again_is_not_deleted(clock):
    adapter, finder = _finder(clock, interval=0, fips=True)
    net = adapter.api.network
    net.ips_list = [fip("f1", "1.2.3.4"), fip("f2", "1.2.3.5")]
    found = {r.id: r for r in finder.resources()}
    net.ips_list[0].port_id = "p9"
    finder.delete(found["f1"])
    finder.delete(found["f2"])
    assert net.deleted == [("ip", "f2")]
    finder.delete(Resource(type=FLOATING_IPS, id="gone"))


def test_other_resource_types_are_refused(clock):
    _, finder = _finder(clock)
    with pytest.raises(errors.ConfigurationError):
        finder.delete(Resource(type="volumes", id="v1"))
