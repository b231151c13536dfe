"""The create machine, stepped by hand with a stand-in adapter and clock."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.instance import InstanceState
from nodepool.driver.openstack.create import Created, OpenStackCreate

from tests.unit.openstack.helpers import server

Created1 = Created("srv-1", {"instances": 1, "cores": 1, "ram": 2048})


def _machine(adapter, clock, spec_factory):
    return OpenStackCreate(adapter, spec_factory(), clock=clock)


def _to_building(machine, adapter):
    machine.advance()                       # SUBMIT -> CREATING
    adapter.creates[-1].set_result(Created1)
    machine.advance()                       # CREATING -> BUILDING
    assert machine.state is machine.State.BUILDING


def test_happy_path_sets_external_id_then_instance(adapter, clock,
                                                    spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    assert not machine.advance()
    assert machine.state is machine.Phase.CREATING
    assert not machine.advance()            # create still running
    adapter.creates[0].set_result(Created1)
    machine.advance()
    assert machine.external_id == "srv-1" and machine.instance is None
    clock.advance(1)
    adapter.poll(server(status="BUILD"))
    assert not machine.advance()
    assert machine.state is machine.State.BUILDING
    adapter.poll(server(status="ACTIVE"))
    machine.advance()
    assert machine.state is machine.State.FINISHING
    adapter.finishes[0].set_result("172.24.0.10")
    assert machine.advance()
    instance = machine.instance
    assert instance.state is InstanceState.RUNNING
    assert instance.public_ipv4 == instance.interface_ip == "172.24.0.10"
    assert instance.private_ipv4 == "10.0.0.5"
    assert instance.resources == Created1.resources
    assert instance.az == "zone-a"
    assert adapter.poller.watched == 0      # unwatched once ACTIVE


def test_error_server_is_a_failed_attempt(adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server(status="ERROR", fault={
        "message": "Build of instance aborted: Failed to allocate the "
                   "network(s).", "code": 500}))
    with pytest.raises(errors.LaunchError) as caught:
        machine.advance()
    assert caught.value.stat_key == "error.status"
    assert "Failed to allocate" in str(caught.value)
    assert adapter.refused == 0


def test_error_server_without_a_valid_host_is_a_capacity_error(
        adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server(status="ERROR", fault={
        "message": "No valid host was found. There are not enough hosts "
                   "available.", "code": 500}))
    with pytest.raises(errors.CapacityError) as caught:
        machine.advance()
    assert caught.value.stat_key == "error.capacity"


def test_error_with_quota_fault_aborts(adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server(status="ERROR", fault={
        "message": "Quota exceeded for cores", "code": 403}))
    with pytest.raises(errors.QuotaError):
        machine.advance()
    assert adapter.refused == 1             # cached limits forgotten


def test_quota_refusal_of_the_create_call(adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    machine.advance()
    adapter.creates[0].set_exception(errors.QuotaError("403 quota"))
    with pytest.raises(errors.QuotaError):
        machine.advance()
    assert adapter.refused == 1


def test_a_transient_create_failure_fails_the_attempt(adapter, clock,
                                                     spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    machine.advance()
    adapter.creates[0].set_exception(errors.TransientError("503"))
    with pytest.raises(errors.TransientError):
        machine.advance()
    clock.advance(60.0)
    assert len(adapter.creates) == 1        # never sent again here


def test_other_create_errors_propagate(adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    machine.advance()
    adapter.creates[0].set_exception(errors.LaunchError("400 bad"))
    with pytest.raises(errors.LaunchError):
        machine.advance()


def test_server_missing_from_fresh_lists_vanished(adapter, clock,
                                                  spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(0.1)
    adapter.poll()                          # started after the watch: fresh
    machine.advance()
    clock.advance(OpenStackCreate.MISSING_GRACE + 1)
    adapter.poll()
    with pytest.raises(errors.LaunchError, match="vanished"):
        machine.advance()


def test_stale_list_without_server_is_not_vanished(adapter, clock,
                                                   spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    adapter.poll()                          # before the watch: stale
    _to_building(machine, adapter)
    clock.advance(OpenStackCreate.MISSING_GRACE + 5)
    assert not machine.advance()
    assert machine.state is machine.State.BUILDING


def test_deleting_server_while_building_fails(adapter, clock, spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server(status="BUILD", **{"OS-EXT-STS:task_state":
                                           "deleting"}))
    with pytest.raises(errors.LaunchError):
        machine.advance()


def _floating_ip_fails(machine, adapter, clock, error):
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server())
    machine.advance()
    adapter.finishes[0].set_exception(error)


def test_a_floating_ip_access_error_tries_again(adapter, clock,
                                               spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _floating_ip_fails(machine, adapter, clock,
                       errors.EndpointError("neutron down"))
    machine.advance()
    assert machine.state is machine.State.BUILDING
    clock.advance(1)
    adapter.poll(server())
    machine.advance()
    adapter.finishes[1].set_result(None)
    assert machine.advance()
    assert machine.instance.private_ipv4 == "10.0.0.5"
    assert machine.instance.public_ipv4 == ""


def test_a_floating_ip_transient_error_fails_the_attempt(adapter, clock,
                                                        spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _floating_ip_fails(machine, adapter, clock,
                       errors.TransientError("neutron 503"))
    with pytest.raises(errors.TransientError):
        machine.advance()
    assert len(adapter.finishes) == 1


def test_abandoned_attempt_deletes_what_it_still_creates(adapter, clock,
                                                         spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    machine.advance()
    future = adapter.creates[0]
    future.set_running_or_notify_cancel()   # the call is under way
    machine.abandon()
    future.set_result(Created1)
    assert [sid for sid, _ in adapter.deletes] == ["srv-1"]


def test_abandon_before_the_call_started_cancels_it(adapter, clock,
                                                    spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    machine.advance()
    machine.abandon()
    assert adapter.creates[0].cancelled()
    assert adapter.deletes == []


def test_active_without_addresses_keeps_waiting(adapter, clock,
                                               spec_factory):
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server(addresses={}))
    assert not machine.advance()
    assert machine.state is machine.State.BUILDING
    adapter.poll(server())
    machine.advance()
    assert machine.state is machine.State.FINISHING


def test_server_needing_no_floating_ip_is_ready_at_once(adapter, clock,
                                                      spec_factory):
    adapter.floating = False
    machine = _machine(adapter, clock, spec_factory)
    _to_building(machine, adapter)
    clock.advance(1)
    adapter.poll(server())
    assert machine.advance()
    assert adapter.finishes == []
    assert machine.instance.private_ipv4 == "10.0.0.5"
