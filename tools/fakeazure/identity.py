"""The Entra ID part of the fake: enough for MSAL's client-credentials flow.

azure-identity's ``ClientSecretCredential`` (through MSAL) does, with
``authority=<base_url>`` and ``disable_instance_discovery=True``:

1. ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (tenant
   discovery), reading ``token_endpoint`` and ``authorization_endpoint``;
2. ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``,
   ``client_id``, ``client_secret`` and ``scope``.

Without ``disable_instance_discovery`` MSAL first asks
``login.microsoftonline.com`` whether the authority host is known; that is a
real Internet host, so callers must disable it (the route for a local
instance discovery exists for clients that can be pointed at it).

The v1 endpoint ``POST /{tenant}/oauth2/token`` (``resource=`` instead of
``scope=``, answer with ``expires_on``) is served as well, for drivers that
fetch tokens with plain HTTP.

Failure story: a wrong tenant, client id or secret gets the AADSTS error an
application would see from Entra ID (400/401 with ``error`` and
``error_description``), so the driver's "bad credentials" path can be tested.
Tokens are opaque random strings; ARM requests must carry one that this
server issued and that has not expired, else they get 401.  Every token
request is recorded (``Stats.token_requests``: monotonic time, issued);
``LocalAzure.rotate_secret`` refuses the secret clients hold from then on.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from typing import TYPE_CHECKING

from .routes import Call, Reply, Router

if TYPE_CHECKING:  # pragma: no cover
    from .server import LocalAzure


def _oidc_config(base: str, tenant: str) -> dict:
    root = f"{base}/{tenant}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "issuer": f"{root}/v2.0",
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token",
                                     "id_token token"],
        "scope_types_supported": ["openid", "profile", "email",
                                  "offline_access"],
        "tenant_region_scope": None,
    }


def _aad_error(status: int, error: str, description: str) -> Reply:
    """Entra ID's error body; ``AADSTS<n>:`` opens the description."""
    code = description.partition(":")[0].removeprefix("AADSTS")
    return Reply(status, {"error": error, "error_description": description,
                          "error_codes": [int(code)] if code.isdigit()
                          else []})


class TokenService:
    """Issues and checks bearer tokens for one service principal."""

    def __init__(self, azure: "LocalAzure", lifetime: float = 3600.0) -> None:
        self.azure = azure
        self.lifetime = lifetime
        self._tokens: dict[str, float] = {}   # token -> expiry (epoch)

    def register(self, router: Router) -> None:
        router.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration",
                   self.openid_configuration)
        router.add("GET", "/{tenant}/.well-known/openid-configuration",
                   self.openid_configuration)
        router.add("GET", "/common/discovery/instance",
                   self.instance_discovery)
        router.add("POST", "/{tenant}/oauth2/v2.0/token", self.token_v2)
        router.add("POST", "/{tenant}/oauth2/token", self.token_v1)

    # -- endpoints ---------------------------------------------------------
    def openid_configuration(self, call: Call) -> Reply:
        tenant = call.params["tenant"]
        if tenant.lower() not in (self.azure.tenant_id.lower(),
                                  "organizations", "common"):
            return _aad_error(400, "invalid_tenant",
                              f"AADSTS90002: Tenant '{tenant}' not found.")
        return Reply(200, _oidc_config(self.azure.base_url, tenant))

    def instance_discovery(self, call: Call) -> Reply:
        host = urllib.parse.urlsplit(self.azure.base_url).netloc
        return Reply(200, {
            "tenant_discovery_endpoint":
                f"{self.azure.base_url}/{self.azure.tenant_id}/v2.0/"
                ".well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host,
                          "aliases": [host]}]})

    def token_v2(self, call: Call) -> Reply:
        form, error = self._check_client(call)
        self._record(error is None)
        if error:
            return error
        token, lifetime = self.issue()
        return Reply(200, {"token_type": "Bearer", "expires_in": lifetime,
                           "ext_expires_in": lifetime,
                           "access_token": token})

    def token_v1(self, call: Call) -> Reply:
        form, error = self._check_client(call)
        self._record(error is None)
        if error:
            return error
        token, lifetime = self.issue()
        now = int(time.time())
        return Reply(200, {"token_type": "Bearer",
                           "expires_in": str(lifetime),
                           "expires_on": str(now + lifetime),
                           "not_before": str(now),
                           "resource": form.get("resource", ""),
                           "access_token": token})

    # -- tokens ------------------------------------------------------------
    def _record(self, issued: bool) -> None:
        self.azure.counters.token_requests.append((time.monotonic(), issued))

    def issue(self) -> tuple[str, int]:
        token = "fake-arm-" + secrets.token_urlsafe(24)
        lifetime = int(self.lifetime)
        self._tokens[token] = time.time() + lifetime
        self.azure.counters.tokens_issued += 1
        return token, lifetime

    def check(self, authorization: str) -> Reply | None:
        """None if the Authorization header carries a live token of ours."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is "
                "missing.")
        expiry = self._tokens.get(token.strip())
        if expiry is None:
            return self._unauthorized(
                "InvalidAuthenticationToken",
                "The access token is invalid.")
        if expiry < time.time():
            return self._unauthorized(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current "
                "UTC time.")
        return None

    def expire_all(self) -> None:
        """Make every issued token expired (tests of token refresh)."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def _unauthorized(self, code: str, message: str) -> Reply:
        challenge = (f'Bearer authorization_uri="{self.azure.base_url}/'
                     f'{self.azure.tenant_id}", error="invalid_token", '
                     f'error_description="{message}"')
        return Reply(401, {"error": {"code": code, "message": message}},
                     {"WWW-Authenticate": challenge})

    def _check_client(self, call: Call) -> tuple[dict, Reply | None]:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            call.raw_body.decode("utf-8", "replace")).items()}
        tenant = call.params["tenant"]
        if tenant.lower() != self.azure.tenant_id.lower():
            return form, _aad_error(
                400, "invalid_request",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make "
                "sure you have the correct tenant ID.")
        if form.get("grant_type") != "client_credentials":
            return form, _aad_error(
                400, "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type "
                f"'{form.get('grant_type')}'.")
        if form.get("client_id") != self.azure.client_id:
            return form, _aad_error(
                400, "unauthorized_client",
                "AADSTS700016: Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") != self.azure.client_secret:
            return form, _aad_error(
                401, "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the "
                "secret being sent in the request is the client secret "
                "value, not the client secret ID.")
        return form, None
