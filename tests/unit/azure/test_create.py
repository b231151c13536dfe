"""The create machine's steps, with futures and listings the test drives."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.create import AzureCreate
from tests.unit.azure.stubs import StubAdapter, record

NIC_PROPS = {"ipConfigurations": [{"properties": {
    "privateIPAddressVersion": "IPv4", "privateIPAddress": "10.0.0.4"}}]}


@pytest.fixture
def adapter(clock):
    return StubAdapter(clock)


def start(adapter, spec):
    machine = AzureCreate(adapter, spec)
    machine.advance()
    assert machine.state is AzureCreate.State.PREPARING
    [(name, args, prep)] = adapter.reads
    assert name == "prepare" and args == (spec,)
    return machine, prep


def test_pip_nic_vm_in_order(adapter, spec_factory, clock):
    machine, prep = start(adapter, spec_factory("0000000005"))
    assert machine.external_id == "np0000000005"   # before anything exists
    prep.set_result({"id": "/img"})
    machine.advance()
    [(kind, name, body, pip)] = adapter.puts
    assert (kind, name) == ("pips", "np0000000005-pip4")
    assert body["tags"]["nodepool_node_id"] == "0000000005"
    machine.advance()
    assert machine.state is AzureCreate.State.PUBLIC_IPS
    pip.set_result(record("np0000000005-pip4", "Updating"))
    clock.advance(1)
    machine.advance()                       # needs a newer listing
    adapter.listings["pips"].show(record("np0000000005-pip4",
                                         ipAddress="1.2.3.4"))
    clock.advance(1)
    machine.advance()
    assert machine.state is AzureCreate.State.NIC
    _, name, body, nic = adapter.puts[-1]
    assert name == "np0000000005-nic"
    ipc = body["properties"]["ipConfigurations"][0]["properties"]
    assert ipc["publicIPAddress"] == {"id": "/x/np0000000005-pip4"}
    assert ipc["subnet"] == {"id": "/subnet"}
    nic.set_result(record("np0000000005-nic", **NIC_PROPS))
    machine.advance()
    assert machine.state is AzureCreate.State.VM
    _, name, body, vm = adapter.puts[-1]
    assert name == "np0000000005"
    assert body["properties"]["storageProfile"]["imageReference"] == \
        {"id": "/img"}
    assert body["properties"]["networkProfile"]["networkInterfaces"][0][
        "id"] == "/nics/np0000000005-nic"
    vm.set_result(record("np0000000005", "Creating"))
    machine.advance()
    adapter.listings["vms"].show(record("np0000000005", "Creating"))
    clock.advance(1)
    machine.advance()
    assert machine.state is AzureCreate.State.VM
    adapter.listings["vms"].show(record("np0000000005"))
    clock.advance(1)
    assert machine.advance() is True
    assert machine.instance == ("instance", "np0000000005",
                                "np0000000005-nic",
                                {4: "np0000000005-pip4"})


def test_private_pool_has_no_public_ip(adapter, spec_factory):
    machine, prep = start(adapter,
                          spec_factory(pool={"public-ipv4": False}))
    prep.set_result({"id": "/img"})
    machine.advance()
    machine.advance()
    [(kind, _, body, _)] = adapter.puts
    assert kind == "nics"
    assert "publicIPAddress" not in \
        body["properties"]["ipConfigurations"][0]["properties"]


def test_a_throttled_put_fails_the_attempt(adapter, spec_factory, clock):
    # LimitedApi outlasted the throttle as long as it should: final here.
    machine, prep = start(adapter, spec_factory())
    prep.set_result({"id": "/img"})
    machine.advance()
    adapter.puts[0][3].set_exception(errors.ThrottledError("429"))
    with pytest.raises(errors.ThrottledError):
        machine.advance()
    clock.advance(60.0)
    assert len(adapter.puts) == 1


def test_quota_error_propagates(adapter, spec_factory):
    machine, prep = start(adapter, spec_factory(pool={"public-ipv4": False}))
    prep.set_result({"id": "/img"})
    machine.advance()
    adapter.puts[0][3].set_result(record("np0000000001-nic", **NIC_PROPS))
    machine.advance()
    adapter.puts[-1][3].set_exception(errors.QuotaError("quota"))
    with pytest.raises(errors.QuotaError):
        machine.advance()


@pytest.mark.parametrize("reason_text,cls,stat", [
    ("OSProvisioningTimedOut: no answer", errors.LaunchError,
     "error.status"),
    ("AllocationFailed: no capacity", errors.CapacityError,
     "error.capacity"),
    ("ZonalAllocationFailed: zone full", errors.CapacityError,
     "error.capacity"),
    ("OverconstrainedAllocationRequest: x", errors.CapacityError,
     "error.capacity"),
    ("SkuNotAvailable: not here", errors.CapacityError, "error.capacity"),
])
def test_failed_provisioning_reports_the_reason(adapter, spec_factory,
                                                clock, reason_text, cls,
                                                stat):
    machine, prep = start(adapter, spec_factory(pool={"public-ipv4": False}))
    prep.set_result({"id": "/img"})
    machine.advance()
    adapter.puts[0][3].set_result(record("np0000000001-nic", **NIC_PROPS))
    machine.advance()
    adapter.puts[-1][3].set_result(record("np0000000001", "Creating"))
    machine.advance()
    clock.advance(1)
    adapter.listings["vms"].show(record("np0000000001", "Failed"))
    machine.advance()
    assert machine.state is AzureCreate.State.FAILED
    name, args, reason_future = adapter.reads[-1]
    assert (name, args) == ("failure_reason", ("np0000000001",))
    machine.advance()                      # still waiting for the reason
    reason_future.set_result(reason_text)
    with pytest.raises(cls, match=reason_text.split(":")[0]) as info:
        machine.advance()
    assert type(info.value) is cls
    assert info.value.stat_key == stat


def test_configuration_error_before_anything_is_created(adapter,
                                                        spec_factory):
    machine, prep = start(adapter, spec_factory(image={"key": None}))
    prep.set_result({"id": "/img"})
    with pytest.raises(errors.ConfigurationError):
        machine.advance()
    assert adapter.puts == []


def test_vanished_resource_fails_the_attempt(adapter, spec_factory, clock):
    machine, prep = start(adapter, spec_factory())
    prep.set_result({"id": "/img"})
    machine.advance()
    adapter.puts[0][3].set_result(record("np0000000001-pip4", "Updating"))
    machine.advance()
    clock.advance(1)
    adapter.listings["pips"].show()
    with pytest.raises(errors.LaunchError, match="disappeared"):
        machine.advance()


def test_abandon_deletes_what_is_still_being_created(adapter, spec_factory):
    machine, prep = start(adapter, spec_factory())
    prep.set_result({"id": "/img"})
    machine.advance()
    pip = adapter.puts[0][3]
    pip.set_running_or_notify_cancel()     # a worker is sending it
    machine.abandon()
    assert adapter.later == []
    pip.set_result(record("np0000000001-pip4"))
    assert adapter.later == [("pips", "np0000000001-pip4")]


def test_a_failed_preparation_fails_the_attempt(adapter, spec_factory,
                                                clock):
    machine, prep = start(adapter, spec_factory())
    prep.set_exception(errors.TransientError("503"))
    with pytest.raises(errors.TransientError):
        machine.advance()
    assert len(adapter.reads) == 1


def test_ready_only_once_the_addresses_are_known(adapter, spec_factory,
                                                 clock):
    machine, prep = start(adapter, spec_factory())
    prep.set_result({"id": "/img"})
    machine.advance()
    adapter.puts[0][3].set_result(record("np0000000001-pip4"))  # no address
    machine.advance()
    adapter.puts[-1][3].set_result(record("np0000000001-nic", **NIC_PROPS))
    machine.advance()
    adapter.puts[-1][3].set_result(record("np0000000001"))
    clock.advance(1)
    adapter.listings["pips"].show(record("np0000000001-pip4"))  # not yet
    machine.advance()
    assert machine.state is AzureCreate.State.ADDRESSES
    clock.advance(1)
    machine.advance()
    assert machine.state is AzureCreate.State.ADDRESSES
    adapter.listings["pips"].show(record("np0000000001-pip4",
                                         ipAddress="20.1.2.3"))
    assert machine.advance() is True
