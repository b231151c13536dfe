"""The delete machine: VM first, then whatever did not cascade."""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.azure.delete import AzureDelete
from tests.unit.azure.stubs import StubAdapter, record


@pytest.fixture
def adapter(clock):
    return StubAdapter(clock)


def test_cascade_needs_one_delete(adapter, clock):
    machine = AzureDelete(adapter, "np1")
    machine.advance()
    machine.advance()
    [(kind, name, vm)] = adapter.deletes
    assert (kind, name) == ("vms", "np1")
    vm.set_result(None)
    machine.advance()
    adapter.listings["vms"].show(record("np1", "Deleting"))
    clock.advance(1)
    machine.advance()
    assert machine.state is AzureDelete.State.DELETING
    adapter.listings["vms"].show()
    clock.advance(1)
    machine.advance()
    assert machine.state is AzureDelete.State.LEFTOVERS
    clock.advance(1)
    for kind in ("nics", "pips", "disks"):
        adapter.listings[kind].show(record("someone-else"))
    assert machine.advance() is True
    assert len(adapter.deletes) == 1


def test_leftovers_in_dependency_order(adapter, clock):
    machine = AzureDelete(adapter, "np1-2", immediate=True)
    machine.advance()
    machine.advance()
    adapter.deletes[0][2].set_result(None)       # 204: there was no VM
    machine.advance()
    clock.advance(1)
    adapter.listings["vms"].show()
    machine.advance()
    clock.advance(1)
    adapter.listings["nics"].show(record("np1-2-nic"))
    adapter.listings["pips"].show(record("np1-2-pip4"), record("np1-2-pip6"))
    adapter.listings["disks"].show()
    machine.advance()
    machine.advance()
    assert [d[:2] for d in adapter.deletes[1:]] == [("nics", "np1-2-nic")]
    adapter.deletes[1][2].set_exception(errors.NotFoundError("gone"))
    machine.advance()
    machine.advance()
    assert sorted(d[1] for d in adapter.deletes[2:]) == \
        ["np1-2-pip4", "np1-2-pip6"]
    for d in adapter.deletes[2:]:
        d[2].set_result(None)
    machine.advance()
    clock.advance(1)
    adapter.listings["pips"].show()
    assert machine.advance() is True


def test_access_errors_are_waited_out_then_raised(adapter, clock):
    machine = AzureDelete(adapter, "np1")
    machine.advance()
    for attempt in range(AzureDelete.MAX_ATTEMPTS - 1):
        machine.advance()
        adapter.deletes[-1][2].set_exception(errors.CredentialError("401"))
        machine.advance()
        clock.advance(60)
    assert len(adapter.deletes) == AzureDelete.MAX_ATTEMPTS - 1
    machine.advance()
    adapter.deletes[-1][2].set_exception(errors.CredentialError("401"))
    with pytest.raises(errors.CredentialError):
        machine.advance()


def test_a_throttled_delete_fails_at_once(adapter, clock):
    # The deleter repeats a failed delete later; the machine does not.
    machine = AzureDelete(adapter, "np1")
    machine.advance()
    machine.advance()
    adapter.deletes[-1][2].set_exception(errors.ThrottledError("429"))
    with pytest.raises(errors.ThrottledError):
        machine.advance()
    assert len(adapter.deletes) == 1


def test_resource_that_never_goes_raises(adapter, clock):
    machine = AzureDelete(adapter, "np1")
    machine.advance()
    machine.advance()
    adapter.deletes[0][2].set_result(None)
    machine.advance()
    clock.advance(AzureDelete.WAIT_LIMIT + 1)
    adapter.listings["vms"].show(record("np1", "Deleting"))
    with pytest.raises(errors.TransientError, match="still exists"):
        machine.advance()


def test_other_errors_propagate(adapter):
    machine = AzureDelete(adapter, "np1")
    machine.advance()
    machine.advance()
    adapter.deletes[0][2].set_exception(errors.LaunchError("NicInUse"))
    with pytest.raises(errors.LaunchError):
        machine.advance()
