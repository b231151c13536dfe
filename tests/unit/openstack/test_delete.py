"""The delete machine and the delete-path calls."""

from __future__ import annotations


import pytest

from nodepool.driver import errors
from nodepool.driver.openstack.delete import OpenStackDelete, ServerDeleter
from nodepool.driver.openstack.poller import ServerPoller

from tests.unit.openstack.fakeconn import FakeApi, fip, port
from tests.unit.openstack.helpers import server


def _machine(adapter, clock):
    return OpenStackDelete(adapter, "srv-1", clock=clock)


def test_delete_waits_until_the_server_is_gone(adapter, clock):
    machine = _machine(adapter, clock)
    machine.advance()
    assert [sid for sid, _ in adapter.deletes] == ["srv-1"]
    assert not machine.advance()
    adapter.deletes[0][1].set_result(None)
    machine.advance()
    assert machine.state is machine.Phase.WAITING
    clock.advance(1)
    adapter.poll(server(**{"OS-EXT-STS:task_state": "deleting"}))
    assert not machine.advance()
    clock.advance(1)
    adapter.poll()
    assert machine.advance()
    assert adapter.poller.watched == 0


def test_not_found_is_deleted(adapter, clock):
    machine = _machine(adapter, clock)
    machine.advance()
    adapter.deletes[0][1].set_exception(errors.NotFoundError("404"))
    assert machine.advance()


def test_failed_call_raises_for_the_launcher_to_retry(adapter, clock):
    machine = _machine(adapter, clock)
    machine.advance()
    adapter.deletes[0][1].set_exception(errors.TransientError("500"))
    with pytest.raises(errors.TransientError):
        machine.advance()


def test_server_that_does_not_go_away_is_deleted_again(adapter, clock):
    machine = _machine(adapter, clock)
    machine.advance()
    adapter.deletes[0][1].set_result(None)
    machine.advance()
    clock.advance(OpenStackDelete.RESEND + 1)
    adapter.poll(server(status="ERROR"))
    machine.advance()
    assert machine.state is machine.Phase.SUBMIT
    machine.advance()
    assert len(adapter.deletes) == 2
    adapter.deletes[1][1].set_result(None)
    machine.advance()
    clock.advance(OpenStackDelete.WAIT_LIMIT)
    adapter.poll(server(**{"OS-EXT-STS:task_state": "deleting"}))
    with pytest.raises(errors.TransientError):
        machine.advance()


class DeleteAdapter:
    def __init__(self, clock, floating=True):
        self.api = FakeApi()
        self.poller = ServerPoller("t", fetch=list, clock=clock)
        self.attached_ips: dict[str, str] = {}
        self.floating = floating

    def may_have_floating_ips(self):
        return self.floating


def _fip_record(address):
    return server(addresses={"private": [
        {"version": 4, "addr": address, "OS-EXT-IPS:type": "floating"}]})


def test_floating_ips_released_before_the_delete(clock):
    adapter = DeleteAdapter(clock)
    net = adapter.api.network
    net.ips_list = [fip("f1", "172.24.0.9", "p1"), fip("f2", "172.24.0.3")]
    adapter.poller.publish([_fip_record("172.24.0.9")], clock())
    ServerDeleter(adapter).delete("srv-1")
    assert net.deleted == [("ip", "f1")]
    assert adapter.api.compute_calls == [("DELETE", "/servers/srv-1")]


def test_ip_attached_by_this_process_is_released_even_if_unlisted(clock):
    adapter = DeleteAdapter(clock)
    adapter.api.network.ips_list = [fip("f1", "172.24.0.9", "p1")]
    adapter.poller.publish([server()], clock())      # list predates the IP
    adapter.attached_ips["srv-1"] = "172.24.0.9"
    ServerDeleter(adapter).delete("srv-1")
    assert adapter.api.network.deleted == [("ip", "f1")]
    assert adapter.attached_ips == {}


def test_known_server_without_floating_ip_costs_no_lookups(clock):
    adapter = DeleteAdapter(clock)
    adapter.poller.publish([server()], clock())
    ServerDeleter(adapter).delete("srv-1")
    assert adapter.api.reads == []
    assert adapter.api.writes == []


def test_unknown_server_asks_its_ports(clock):
    adapter = DeleteAdapter(clock)
    net = adapter.api.network
    net.ports_list = [port("p1", device_id="srv-1", status="ACTIVE")]
    net.ips_list = [fip("f1", "172.24.0.9", "p1"), fip("f2", "1.2.3.4", "pX")]
    ServerDeleter(adapter).delete("srv-1")
    assert net.deleted == [("ip", "f1")]
    assert adapter.api.reads == ["list server ports", "list floating ips"]


def test_unknown_server_without_auto_ips_costs_nothing(clock):
    adapter = DeleteAdapter(clock, floating=False)
    ServerDeleter(adapter).delete("srv-1")
    assert adapter.api.reads == []


def test_delete_of_missing_server_raises_not_found(clock):
    adapter = DeleteAdapter(clock, floating=False)
    adapter.api.compute_error = errors.NotFoundError("404")
    with pytest.raises(errors.NotFoundError):
        ServerDeleter(adapter).delete("srv-1")


def test_deleter_tolerates_ip_already_gone(clock):
    adapter = DeleteAdapter(clock)
    gone = fip("f1", "172.24.0.9", "p1")
    adapter.api.network.ips = lambda **kw: [gone]    # listed, then gone
    adapter.poller.publish([_fip_record("172.24.0.9")], clock())
    ServerDeleter(adapter).delete("srv-1")
    assert adapter.api.compute_calls == [("DELETE", "/servers/srv-1")]
