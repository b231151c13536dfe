"""A stand-in OpenStackApi for unit tests of the calls the driver makes.

Records every read and write by operation name and answers from plain
lists; never touches the network (real calls are in the functional tests).
"""

from __future__ import annotations

from types import SimpleNamespace as NS

from nodepool.driver import errors


class FakeNetwork:
    def __init__(self):
        self.ports_list: list[NS] = []
        self.ips_list: list[NS] = []
        self.deleted: list[tuple[str, str]] = []

    def ports(self, **filters):
        return [p for p in self.ports_list
                if all(getattr(p, k) == v for k, v in filters.items())]

    def ips(self, **filters):
        out = []
        for ip in self.ips_list:
            ok = True
            for key, value in filters.items():
                values = value if isinstance(value, list) else [value]
                ok = ok and getattr(ip, key) in values
            if ok:
                out.append(ip)
        return out

    def _find(self, store, rid):
        for item in store:
            if item.id == rid:
                return item
        raise errors.NotFoundError(rid)

    def get_port(self, rid):
        return self._find(self.ports_list, rid)

    def get_ip(self, rid):
        return self._find(self.ips_list, rid)

    def delete_port(self, rid, ignore_missing=True):
        self.ports_list.remove(self._find(self.ports_list, rid))
        self.deleted.append(("port", rid))

    def delete_ip(self, rid, ignore_missing=True):
        self.ips_list.remove(self._find(self.ips_list, rid))
        self.deleted.append(("ip", rid))


class FakeApi:
    def __init__(self):
        self.network = FakeNetwork()
        self.conn = NS(network=self.network)
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.compute_calls: list[tuple[str, str]] = []
        self.compute_error: Exception | None = None

    def read(self, operation, fn, *args, **kw):
        self.reads.append(operation)
        return fn(*args, **kw)

    def write(self, operation, fn, *args, **kw):
        self.writes.append(operation)
        return fn(*args, **kw)

    def compute(self, method, path, *, write, operation, **kw):
        self.compute_calls.append((method, path))
        if self.compute_error is not None:
            raise self.compute_error
        return None


def port(pid, device_id="", status="DOWN", owner="compute:nova",
         network_id="net-1", ip="10.0.0.5"):
    return NS(id=pid, device_id=device_id, status=status,
              device_owner=owner, network_id=network_id,
              fixed_ips=[{"ip_address": ip}])


def fip(fid, address, port_id=None):
    return NS(id=fid, floating_ip_address=address, port_id=port_id)
