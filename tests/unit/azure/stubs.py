"""A stand-in for AzureAdapter with futures and listings the test drives."""

from __future__ import annotations

from concurrent.futures import Future

from nodepool.driver.azure.listing import Snapshot
from nodepool.driver.backoff import AccessGate


class StubListing:
    def __init__(self, clock):
        self.clock = clock
        self.records: dict[str, dict] | None = None
        self.started = 0.0

    def show(self, *records):
        """The next listing (started now) contains ``records``."""
        self.records = {r["name"].lower(): r for r in records}
        self.started = self.clock()

    def snapshot(self, newer_than):
        if self.records is None or self.started < newer_than:
            return None
        return Snapshot(self.started, self.records)


class StubAdapter:
    location = "westus"
    subnet_id = "/subnet"

    def __init__(self, clock):
        self.clock = clock
        self.reads: list[tuple] = []
        self.access = AccessGate("test", clock=clock)
        self.puts: list[tuple] = []
        self.deletes: list[tuple] = []
        self.later: list[tuple] = []
        self.listings = {k: StubListing(clock)
                         for k in ("vms", "nics", "pips", "disks")}

    def submit_read(self, fn, *args):
        future = Future()
        self.reads.append((fn.__name__, args, future))
        return future

    def submit_put(self, kind, name, body):
        future = Future()
        self.puts.append((kind, name, body, future))
        return future

    def submit_delete(self, kind, name):
        future = Future()
        self.deletes.append((kind, name, future))
        return future

    def prepare(self, spec):       # run by the test through submit_read
        raise AssertionError("not called directly")

    def failure_reason(self, vm):
        raise AssertionError("not called directly")

    def resource_id(self, kind, name):
        return f"/{kind}/{name}"

    def instance_for(self, vm, nic, pips):
        return ("instance", vm["name"], nic["name"],
                {v: p["name"] for v, p in pips.items()})

    def delete_later(self, kind, name):
        self.later.append((kind, name))


def record(name, state="Succeeded", **props):
    return {"name": name, "id": f"/x/{name}",
            "properties": {"provisioningState": state, **props}}
