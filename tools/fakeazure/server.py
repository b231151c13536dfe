"""LocalAzure: a local Azure Resource Manager and Entra ID token endpoint.

Usage::

    az = LocalAzure(workdir, vm_create_latency=2.0).start()
    az.ensure_network("rg", "net", location="westus")
    az.write_auth_file(path)           # service-principal JSON for auth-path
    cred = az.credential()             # a real azure-identity credential
    client = ComputeManagementClient(cred, az.subscription_id,
                                     **az.client_kwargs())
    ...
    az.configure(throttle_next=3); az.stats(); az.resources(); az.stop()

Every ARM request (paths under ``/subscriptions``) goes through, in order:
settle due operations, count the call under its route template, check the
bearer token (401), the ``api-version`` (400) and the subscription (404), the
injected faults (429/5xx), then the route; an ``ArmError`` becomes the ARM
error envelope.  State lives in :class:`~tools.fakeazure.store.Store`, whose
lock is held for the whole of that sequence; ``api_latency`` is slept after
the lock is released so slow replies still overlap.

Control endpoints (no auth, never counted): ``GET|POST /_fake/config``,
``GET /_fake/stats``, ``POST /_fake/stats/reset``, ``GET /_fake/resources``,
``POST /_fake/tokens/expire``.

Failure story: if the listener dies, clients see connection errors; a broken
handler answers 500 InternalServerError rather than dropping the connection,
so a bug in the fake shows up as an HTTP error in the driver's logs.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import traceback
import urllib.parse
import uuid
from typing import Any, Callable, Optional

from tools.certs import make_ca

from . import arm, catalog, compute, disks, groups, network
from .addresses import AddressBook
from .behaviour import Behaviour, FaultGate, Stats
from .catalog import Catalog
from .https import serve
from .identity import TokenService
from .routes import Call, Reply, Router
from .store import ArmError, Store, group_id, norm_location, resource_id

DEFAULT_SUBSCRIPTION = "3e1f5c2a-7b4d-4c8e-9a61-0f2d8b7c5e10"
DEFAULT_TENANT = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
DEFAULT_CLIENT = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


class LocalAzure:
    """A fake ARM + token endpoint on https://127.0.0.1:<port>.

    ``behaviour`` keyword arguments are the knobs of
    :class:`~tools.fakeazure.behaviour.Behaviour` (latencies in seconds,
    ``*_next`` fault counters, ``quota_limits``, public IP pools ...).
    ``clock`` (monotonic seconds) decides when operations finish and
    feeds the rate throttle; tests may pass a manual one.  ``start``/``stop``
    may each be called once.
    """

    def __init__(self, workdir: str, *, port: int = 0,
                 subscription_id: str = DEFAULT_SUBSCRIPTION,
                 tenant_id: str = DEFAULT_TENANT,
                 client_id: str = DEFAULT_CLIENT,
                 client_secret: Optional[str] = None,
                 locations: tuple[str, ...] = catalog.DEFAULT_LOCATIONS,
                 vm_sizes: Optional[dict] = None,
                 token_lifetime: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic,
                 **behaviour: Any) -> None:
        self.workdir = workdir
        self.port = port
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.behaviour = Behaviour()
        self.behaviour.update(**behaviour)
        self.store = Store(clock)
        self.catalog = Catalog(vm_sizes, locations)
        self.addresses = AddressBook()
        self.counters = Stats()
        self.faults = FaultGate(self.behaviour)
        self.tokens = TokenService(self, token_lifetime)
        self.router = Router()
        arm.register_monitors(self.router)
        for module in (groups, network, compute, disks, catalog):
            module.register(self.router)
        self.tokens.register(self.router)
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._state = "new"
        self._certs = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> "LocalAzure":
        if self._state != "new":
            raise RuntimeError(f"LocalAzure already {self._state}")
        os.makedirs(self.workdir, exist_ok=True)
        self._certs = make_ca(os.path.join(self.workdir, "tls"))
        self._server, self._thread = serve(
            self, self.port, self._certs.server_cert, self._certs.server_key)
        self.port = self._server.server_address[1]
        self._state = "started"
        return self

    def stop(self) -> None:
        if self._state != "started":
            return
        self._state = "stopped"
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "LocalAzure":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> str:
        if self._certs is None:
            raise RuntimeError("LocalAzure not started")
        return self._certs.ca

    # -- client helpers -------------------------------------------------------
    def auth_data(self) -> dict:
        """The service-principal JSON (``az ad sp create-for-rbac --sdk-auth``
        layout) with every endpoint pointing at this server."""
        return {"clientId": self.client_id,
                "clientSecret": self.client_secret,
                "subscriptionId": self.subscription_id,
                "tenantId": self.tenant_id,
                "activeDirectoryEndpointUrl": self.base_url,
                "resourceManagerEndpointUrl": self.base_url + "/",
                "activeDirectoryGraphResourceId": self.base_url + "/",
                "sqlManagementEndpointUrl": self.base_url + "/",
                "galleryEndpointUrl": self.base_url + "/",
                "managementEndpointUrl": self.base_url + "/"}

    def write_auth_file(self, path: str) -> str:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.auth_data(), f, indent=2)
        return path

    def credential(self, **kwargs: Any):
        """A real ``ClientSecretCredential`` that gets tokens from here."""
        from azure.identity import ClientSecretCredential
        kwargs.setdefault("connection_verify", self.ca_path)
        return ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret,
            authority=self.base_url, disable_instance_discovery=True,
            **kwargs)

    def client_kwargs(self, **extra: Any) -> dict:
        """Keyword arguments for any azure-mgmt client aimed at this server."""
        kwargs = {"base_url": self.base_url,
                  "credential_scopes": [self.base_url + "/.default"],
                  "connection_verify": self.ca_path, "polling_interval": 0}
        kwargs.update(extra)
        return kwargs

    # -- runtime control ------------------------------------------------------
    def configure(self, **flags: Any) -> None:
        with self.store.lock:
            self.behaviour.update(**flags)

    def stats(self) -> dict:
        with self.store.lock:
            return self.counters.as_dict()

    def reset_stats(self) -> None:
        with self.store.lock:
            self.counters.reset()

    def resources(self) -> dict[str, list[dict]]:
        """Everything stored, grouped by short type (``virtualMachines``...),
        including what ARM hides on GET (customData, userData)."""
        with self.store.lock:
            self.store.settle()
            snap = self.store.snapshot()
        return {kind: [{k: v for k, v in body.items() if not k.startswith("_")}
                       for body in bodies] for kind, bodies in snap.items()}

    def expire_tokens(self) -> None:
        with self.store.lock:
            self.tokens.expire_all()

    def rotate_secret(self, secret: str | None = None) -> str:
        """A new client secret (as after a rotation in Entra ID): token
        requests with the old one are refused (AADSTS7000215) and every
        issued token expires.  Returns the new secret."""
        with self.store.lock:
            self.client_secret = secret or secrets.token_urlsafe(24)
            self.tokens.expire_all()
            return self.client_secret

    def token_requests(self) -> list[tuple[float, bool]]:
        """``(time.monotonic(), issued)`` of every token request so far."""
        with self.store.lock:
            return list(self.counters.token_requests)

    # -- seeding --------------------------------------------------------------
    def ensure_group(self, name: str, location: str = "westus") -> str:
        gid = group_id(self.subscription_id, name)
        with self.store.lock:
            if self.store.get(gid) is None:
                self.store.put({
                    "id": gid, "name": name,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": norm_location(location), "tags": {},
                    "properties": {"provisioningState": "Succeeded"}})
        return gid

    def ensure_network(self, resource_group: str, vnet: str,
                       subnet: str = "default", location: str = "westus",
                       prefix: str = "10.0.0.0/16",
                       subnet_prefix: str = "10.0.0.0/20") -> str:
        """Create group, vnet and subnet if missing; returns the subnet id."""
        self.ensure_group(resource_group, location)
        vid = resource_id(self.subscription_id, resource_group,
                          "Microsoft.Network", "virtualNetworks", vnet)
        sid = f"{vid}/subnets/{subnet}"
        with self.store.lock:
            body = self.store.get(vid) or self.store.put({
                "id": vid, "name": vnet,
                "type": "Microsoft.Network/virtualNetworks",
                "location": norm_location(location), "tags": {},
                "etag": f'W/"{uuid.uuid4()}"',
                "properties": {"addressSpace": {"addressPrefixes": [prefix]},
                               "subnets": [],
                               "provisioningState": "Succeeded"}})
            if network.find_subnet(self.store, sid) is None:
                body["properties"]["subnets"].append({
                    "id": sid, "name": subnet,
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "properties": {"addressPrefix": subnet_prefix,
                                   "provisioningState": "Succeeded"}})
        return sid

    def add_image(self, resource_group: str, name: str,
                  location: str = "westus",
                  tags: Optional[dict] = None) -> str:
        """A managed image (group created if missing); returns its id."""
        self.ensure_group(resource_group, location)
        with self.store.lock:
            return disks.add_image(self, resource_group, name, location,
                                   tags)["id"]

    def add_gallery_image_version(self, gallery: str, image: str,
                                  version: str, **kwargs: Any) -> str:
        """A shared (or ``community=True``) gallery image version; returns
        the ``sharedGalleryImageId``/``communityGalleryImageId`` to use."""
        with self.store.lock:
            body = self.catalog.add_gallery_image_version(
                gallery, image, version, **kwargs)
        return body["identifier"]["uniqueId"]

    # -- request handling -----------------------------------------------------
    @staticmethod
    def request_id() -> str:
        return str(uuid.uuid4())

    def handle(self, method: str, path: str, query: dict[str, str],
               headers: dict[str, str], body: bytes) -> Reply:
        headers = {k.lower(): v for k, v in headers.items()}
        call = Call(method, path, query, headers, body, self)
        if path.startswith("/_fake/"):
            return self._control(call)
        is_arm = path.lower().startswith("/subscriptions/")
        with self.store.lock:
            reply = self._dispatch(call)
            self.counters.statuses[reply.status] += 1
        if is_arm and self.behaviour.api_latency > 0:
            time.sleep(self.behaviour.api_latency)
        return reply

    def _dispatch(self, call: Call) -> Reply:
        self.store.settle()
        match = self.router.match(call.method, call.path)
        if match is None:
            self.counters.calls[f"{call.method} (unmatched)"] += 1
            return Reply(404, {"error": {
                "code": "InvalidResourceType",
                "message": f"The local fake does not implement "
                           f"{call.method} {call.path}."}})
        route, params = match
        call.params = {k: urllib.parse.unquote(v) for k, v in params.items()}
        call.template = route.template
        key = f"{call.method} {route.template}"
        self.counters.calls[key] += 1
        try:
            if route.template.startswith("/subscriptions/"):
                refused = self._gate(call, key)
                if refused is not None:
                    return refused
            return route.fn(call)
        except ArmError as exc:
            return Reply(exc.status, exc.body())
        except Exception:  # a bug in the fake: answer, do not hang up
            return Reply(500, {"error": {"code": "InternalServerError",
                                         "message": traceback.format_exc()}})

    def _gate(self, call: Call, key: str) -> Optional[Reply]:
        refused = self.tokens.check(call.headers.get("authorization", ""))
        if refused is not None:
            return refused
        if not call.api_version:
            raise ArmError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) "
                           "is required for all requests.")
        sub = call.params.get("subscriptionId", "")
        if sub.lower() != self.subscription_id.lower():
            raise ArmError(404, "SubscriptionNotFound",
                           f"The subscription '{sub}' could not be found.")
        fault = self.faults.check(key, self.store.clock())
        if fault is not None:
            if fault.status == 429:
                self.counters.throttled += 1
            else:
                self.counters.server_errors += 1
        return fault

    def _control(self, call: Call) -> Reply:
        target = (call.method, call.path.rstrip("/"))
        try:
            if target == ("POST", "/_fake/config"):
                self.configure(**call.json())
            if target in (("POST", "/_fake/config"), ("GET", "/_fake/config")):
                with self.store.lock:
                    return Reply(200, self.behaviour.as_dict())
            if target == ("GET", "/_fake/stats"):
                return Reply(200, self.stats())
            if target == ("POST", "/_fake/stats/reset"):
                self.reset_stats()
                return Reply(204)
            if target == ("GET", "/_fake/resources"):
                return Reply(200, self.resources())
            if target == ("POST", "/_fake/tokens/expire"):
                self.expire_tokens()
                return Reply(204)
        except (TypeError, ArmError) as exc:
            return Reply(400, {"error": {"code": "BadFakeConfig",
                                         "message": str(exc)}})
        return Reply(404, {"error": {"code": "NotFound",
                                     "message": f"no control endpoint "
                                                f"{call.method} {call.path}"}})
