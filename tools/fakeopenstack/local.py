"""LocalOpenStack: one threaded HTTP server playing a whole OpenStack cloud.

>>> cloud = LocalOpenStack(build_time=0.2).start()
>>> path = cloud.write_clouds_yaml(tmp / "clouds.yaml", cloud_name="fake")
>>> conn = openstack.connect(cloud="fake",
...     config=openstack.config.OpenStackConfig(config_files=[path]))
>>> cloud.configure(max_cores=8); cloud.fail_next_creates(2, kind="quota")
>>> cloud.stats()["calls"]["POST /compute/v2.1/servers"]
>>> cloud.stop()

It serves Keystone (``/identity``), Nova (``/compute/v2.1``), Glance
(``/image``), Neutron (``/networking``) and Cinder (``/volume/v3/<project>``)
on one 127.0.0.1 port, with the real wire formats, so the real openstacksdk
runs end to end against it.  See :class:`~tools.fakeopenstack.records.Settings`
for the knobs.

Threads: ``serve_forever`` runs on the "fakeopenstack-http" thread and each
connection gets its own daemon thread (``ThreadingHTTPServer``); all of them
share one :class:`~tools.fakeopenstack.state.CloudState` under its lock.
``stop()`` stops accepting and closes the listening socket; idle keep-alive
connections die with their daemon threads.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Callable

import yaml

from tools.fakeopenstack import (cinder, control, glance, keystone, neutron,
                                 nova, servers)
from tools.fakeopenstack.records import Settings
from tools.fakeopenstack.routing import (CallStats, Request, Router,
                                         make_handler_class)
from tools.fakeopenstack.state import CloudState

__all__ = ["LocalOpenStack"]


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stop() really cuts clients off.

    Without this a client's pooled keep-alive connection would still be
    served after stop(), and a test of "the cloud went away" would pass
    for the wrong reason.
    """
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class LocalOpenStack:
    """A fake OpenStack cloud on ``http://127.0.0.1:<port>``.

    ``port=0`` picks a free port.  ``clock`` drives BUILD/delete deadlines
    (monotonic seconds).  ``flavors`` are ``(name, vcpus, ram_mib, disk_gb)``
    tuples (ids 1..N), ``images`` image names.  ``private_ipv6`` (a CIDR,
    e.g. ``"2001:db8::/64"``) makes the ``private`` network dual-stack:
    servers on it then get an IPv6 address as well.  Remaining keyword
    arguments are :class:`Settings` flags, e.g. ``create_latency=1.0``.
    """

    def __init__(self, port: int = 0, *,
                 clock: Callable[[], float] = time.monotonic,
                 flavors: list[tuple[str, int, int, int]] | None = None,
                 images: list[str] | None = None,
                 availability_zones: list[str] | None = None,
                 username: str = "demo", password: str = "secret",
                 project_name: str = "demo",
                 private_ipv6: str | None = None, **settings: Any) -> None:
        config = Settings()
        config.update(**settings)
        self.state = CloudState(config, clock=clock, flavors=flavors,
                                images=images,
                                availability_zones=availability_zones,
                                username=username, password=password,
                                project_name=project_name,
                                private_ipv6=private_ipv6)
        self._stats = CallStats()
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "LocalOpenStack":
        if self._httpd is not None:
            raise RuntimeError("LocalOpenStack already started")
        router = Router()
        handler = make_handler_class(router, self._stats, self._authorize)
        self._httpd = _HTTPServer(("127.0.0.1", self._requested_port),
                                  handler)
        self.state.base_url = f"http://127.0.0.1:{self.port}"
        for module in (keystone, nova, servers, glance, neutron, cinder):
            module.register(router, self.state)
        control.register(router, self.state, self._stats)
        # A short poll interval keeps stop() fast (shutdown waits for it).
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        args=(0.05,),
                                        name="fakeopenstack-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = self._thread = None

    def __enter__(self) -> "LocalOpenStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authorize(self, request: Request, template: str) -> None:
        keystone.authorize(self.state, request, template)
        latency = self.state.settings.api_latency
        if latency and not template.startswith("/_fake"):
            time.sleep(latency)

    # -- addresses and credentials ---------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LocalOpenStack is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/identity/v3"

    @property
    def project_id(self) -> str:
        return self.state.project_id

    def clouds_config(self, cloud_name: str = "fake",
                      region: str = "RegionOne") -> dict[str, Any]:
        """The ``clouds:`` mapping of a clouds.yaml for this cloud.

        A new ``region`` is added to the catalog (same endpoints).
        """
        s = self.state
        with s.lock:
            if region not in s.regions:
                s.regions.append(region)
        return {"clouds": {cloud_name: {
            "auth": {"auth_url": self.auth_url, "username": s.username,
                     "password": s.password, "project_name": s.project_name,
                     "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "auth_type": "password", "identity_api_version": 3,
            "region_name": region, "interface": "public"}}}

    def write_clouds_yaml(self, path: str | os.PathLike[str],
                          cloud_name: str = "fake",
                          region: str = "RegionOne") -> str:
        path = os.fspath(path)
        with open(path, "w") as f:
            yaml.safe_dump(self.clouds_config(cloud_name, region), f,
                           default_flow_style=False)
        return path

    # -- steering --------------------------------------------------------
    def configure(self, **flags: Any) -> None:
        """Change :class:`Settings` flags at run time.

        Raises ValueError for an unknown flag.
        """
        with self.state.lock:
            self.state.settings.update(**flags)

    def fail_next_creates(self, count: int = 1, kind: str = "http",
                          status: int = 500, message: str | None = None,
                          code: int | None = None) -> None:
        """Script the next ``count`` POST servers calls (see CreateFailure)."""
        control.script_failures(self.state, count, kind, status, message,
                                code)

    def add_port(self, status: str = "DOWN",
                 device_owner: str = "compute:nova", device_id: str = "",
                 network: str = "private", name: str = "") -> dict[str, Any]:
        """Make a port as a leak would leave it (DOWN, owned by compute)."""
        with self.state.lock:
            net = next(n for n in self.state.networks.values()
                       if n["name"] == network)
            port = self.state.create_port(net["id"], device_id=device_id,
                                          device_owner=device_owner,
                                          status=status, name=name)
            return dict(port)

    def set_password(self, password: str) -> None:
        """Change the user's password: clients holding the old one are
        refused (401) from their next token request on, as after a
        rotation; every issued token is revoked."""
        with self.state.lock:
            self.state.password = password
            self.state.tokens.clear()

    def auth_attempts(self) -> list[tuple[float, bool]]:
        """``(clock, accepted)`` of every password auth so far."""
        with self.state.lock:
            return list(self.state.auth_log)

    def revoke_tokens(self) -> None:
        """Invalidate every issued token; clients must re-authenticate."""
        with self.state.lock:
            self.state.tokens.clear()

    # -- observation -----------------------------------------------------
    def stats(self) -> dict[str, dict[str, int]]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def servers(self) -> list[dict[str, Any]]:
        """Servers as Nova would show them (newest microversion)."""
        return control.server_snapshot(self.state)

    def ports(self) -> list[dict[str, Any]]:
        return self._copy(self.state.ports)

    def floating_ips(self) -> list[dict[str, Any]]:
        return self._copy(self.state.floating_ips)

    def volumes(self) -> list[dict[str, Any]]:
        return self._copy(self.state.volumes)

    def _copy(self, store: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        with self.state.lock:
            self.state.tick()
            return [copy.deepcopy(v) for v in store.values()]
