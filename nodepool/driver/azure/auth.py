"""Credentials and SDK clients for one Azure provider.

``auth-path`` names a service-principal JSON file in the layout of
``az ad sp create-for-rbac --sdk-auth``: ``clientId``, ``clientSecret``,
``subscriptionId``, ``tenantId`` (required) and optionally
``activeDirectoryEndpointUrl`` and ``resourceManagerEndpointUrl``, which
default to public Azure.  The endpoints are taken from the file only, so
the same code reaches Azure, a sovereign cloud or a local ARM.

TLS trust: the standard ``REQUESTS_CA_BUNDLE`` variable, when set, is
passed explicitly as ``connection_verify`` to the credential and to every
client (azure-identity's token requests do not all go through requests'
environment handling).

Instance discovery is disabled on purpose: with it, MSAL first asks
``login.microsoftonline.com`` whether the authority is a known host; the
authority comes from the operator's own credentials file, so it is trusted
as given, and no call ever leaves for a host the file does not name.

Retries: the clients are built with ``retry_total=0``.  azure-core's
RetryPolicy would otherwise retry 429 answers by itself, sleeping
``Retry-After`` inside the call where the provider's RateLimiter cannot
see it -- the other threads would keep calling at full rate into the
throttle.  ``AzureApi`` retries instead, and reports every 429 to the
limiter so all callers slow down (see ``api.py``).

Failure story: a missing or malformed file raises ``ConfigurationError``
from the adapter's constructor, so the provider fails to start (and is
left out, config.md §9) instead of failing every launch.

Threads: ``load_auth`` and ``Clients`` run once, on the thread that builds
the adapter, and ``close`` once from ``AzureAdapter.stop`` (or from the
constructor that gives up).  In between, the ``Clients`` -- three SDK
clients over one ``requests.Session`` whose connection pool is sized for the
callers, and one credential -- are shared by every thread of the provider
that calls Azure (create and read pools, pool workers, the cleanup worker);
this module keeps no state of its own beyond them and takes no lock.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from nodepool.driver import errors

__all__ = ["AuthInfo", "load_auth", "Clients", "PUBLIC_ARM", "PUBLIC_AAD"]

PUBLIC_ARM = "https://management.azure.com/"
PUBLIC_AAD = "https://login.microsoftonline.com"

#: azure-core logs every request and response at INFO; ours go to this
#: logger instead, quiet unless an operator's logging config lowers it
HTTP_LOG = logging.getLogger("nodepool.driver.azure.http")
HTTP_LOG.setLevel(logging.WARNING)
#: azure-identity logs every token request (INFO) and every refused one
#: (WARNING); a refused secret is the provider's ``AccessGate``'s to say,
#: once, with repeat counts (``nodepool.driver.backoff``)
logging.getLogger("azure.identity").setLevel(logging.ERROR)


@dataclass(frozen=True)
class AuthInfo:
    client_id: str
    client_secret: str
    subscription_id: str
    tenant_id: str
    authority: str
    resource_manager: str

    @property
    def base_url(self) -> str:
        return self.resource_manager.rstrip("/")

    @property
    def scope(self) -> str:
        return self.base_url + "/.default"


def load_auth(path: str) -> AuthInfo:
    """Read the service-principal file; ConfigurationError if unusable."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise errors.ConfigurationError(
            f"cannot read Azure auth-path {path}: {e}") from e
    missing = [k for k in ("clientId", "clientSecret", "subscriptionId",
                           "tenantId") if not data.get(k)]
    if missing:
        raise errors.ConfigurationError(
            f"Azure auth-path {path} lacks {', '.join(missing)}")
    return AuthInfo(
        client_id=data["clientId"], client_secret=data["clientSecret"],
        subscription_id=data["subscriptionId"], tenant_id=data["tenantId"],
        authority=(data.get("activeDirectoryEndpointUrl")
                   or PUBLIC_AAD).rstrip("/"),
        resource_manager=data.get("resourceManagerEndpointUrl") or PUBLIC_ARM)


def ca_bundle() -> str | bool:
    """``REQUESTS_CA_BUNDLE`` if set, else True (the system's CAs)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or True


class Clients:
    """The compute, network and resource clients plus their credential.

    ``pool_size`` is the HTTP connection pool per client: at least the
    number of threads that call concurrently, so no connection is opened
    and thrown away per call (a TLS handshake each time).
    """

    def __init__(self, auth: AuthInfo, pool_size: int = 16,
                 connection_timeout: float = 10.0,
                 read_timeout: float = 60.0) -> None:
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from azure.identity import ClientSecretCredential
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient

        verify = ca_bundle()
        self.auth = auth
        self.credential = ClientSecretCredential(
            auth.tenant_id, auth.client_id, auth.client_secret,
            authority=auth.authority, disable_instance_discovery=True,
            connection_verify=verify, logger=HTTP_LOG)
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4,
                                                pool_maxsize=pool_size)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

        def kwargs() -> dict[str, Any]:
            transport = RequestsTransport(
                session=self._session, session_owner=False,
                connection_timeout=connection_timeout,
                read_timeout=read_timeout)
            return {"base_url": auth.base_url,
                    "credential_scopes": [auth.scope],
                    "connection_verify": verify, "retry_total": 0,
                    "transport": transport, "logger": HTTP_LOG}

        sub = auth.subscription_id
        self.compute = ComputeManagementClient(self.credential, sub,
                                               **kwargs())
        self.network = NetworkManagementClient(self.credential, sub,
                                               **kwargs())
        self.resource = ResourceManagementClient(self.credential, sub,
                                                 **kwargs())

    def close(self) -> None:
        for client in (self.compute, self.network, self.resource):
            try:
                client.close()
            except Exception:
                pass
        self.credential.close()
        self._session.close()
