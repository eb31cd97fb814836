"""The HTTP API served by uvicorn on loopback, in front of a real worker and store,
with the development issuer (a real OIDC provider on authlib, also on loopback) as
the company's identity provider. Callers sign in the way people do: the device
flow, with their TOTP code.

    async with running_api(time_env, demo) as api:
        alice = await api.sign_in("alice")
        response = await api.post(alice, "/v1.0/.../assignmentScheduleRequests", json={...})
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from pim.api.app import create_app
from pim.api.services import ApiServices
from pim.client import PimClient
from pim.identity.issuer import PIM_CLI
from pim.identity.oidc import OidcConfig, OidcVerifier
from pim.identity.totp import current_code
from pim.runtime.http import http_client
from pim.runtime.settings import PimSettings
from pim.store import Store
from tests.conftest import TEST_SIGNER, running_worker
from tests.identity.html_forms import read_page
from tests.identity.loopback import AUDIENCE, SERVICE_ID, SERVICE_PRINCIPAL, SERVICE_SECRET, Idp, running_issuer, serving

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GROUP = "/v1.0/identityGovernance/privilegedAccess/group"
REQUESTS = f"{GROUP}/assignmentScheduleRequests"
APPROVALS = f"{GROUP}/assignmentApprovals"


@dataclass
class Api:
    base: str
    http: httpx.AsyncClient
    idp: Idp
    pim: PimClient  # the test's own view of the workflows, for assertions
    services: ApiServices
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)

    async def sign_in(self, user: str) -> str:
        """An access token for `user`, signed in through the device flow with their
        current TOTP code (kept for the test: one sign-in per user)."""
        if user not in self.tokens:
            self.tokens[user] = await device_sign_in(self.idp, user, current_code(await self.store.mfa_secret(user)))
        return self.tokens[user]

    async def service_token(self) -> str:
        """A client-credentials token of the service `svc-sync` (principal svc-directory-sync)."""
        response = await self.idp.http.post(
            self.idp.url("/token"), data={"grant_type": "client_credentials"}, auth=(SERVICE_ID, SERVICE_SECRET)
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def call(self, method: str, token: str | None, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, self.base + path, headers=headers, **kwargs)

    async def get(self, token: str | None, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", token, path, **kwargs)

    async def post(self, token: str | None, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("POST", token, path, **kwargs)

    async def patch(self, token: str | None, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("PATCH", token, path, **kwargs)


async def device_sign_in(idp: Idp, user: str, code: str) -> str:
    device = (await idp.http.post(idp.url("/device_authorization"), data={"client_id": PIM_CLI, "scope": "openid"})).json()
    page = read_page((await idp.http.get(idp.url("/device"))).text)
    values = {"User code": device["user_code"], "User": user, "Code": code}
    approved = await idp.http.post(page.action, data=page.submission(values, "Sign in"))
    assert approved.status_code == 200 and "Signed in" in approved.text, approved.text
    response = await idp.http.post(
        idp.url("/token"), data={"grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": PIM_CLI}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def api_settings(idp: Idp, task_queue: str, **overrides: Any) -> PimSettings:
    values: dict[str, Any] = dict(
        oidc_issuer=idp.issuer,
        oidc_audience=AUDIENCE,
        task_queue=task_queue,
        api_allowed_hosts="127.0.0.1",
        api_settle_timeout=10.0,
        portal=False,  # the API alone (tests/portal serve the portal too)
    )
    values.update(overrides)
    return PimSettings(**values)


@asynccontextmanager
async def running_api(
    env: WorkflowEnvironment, store: Store, issuer: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[Api]:
    """The API for `store` (PimSettings overridden by `settings`), its worker on `env`,
    and the issuer (IssuerSettings overridden by `issuer`); the service principal of
    the test issuer's client-credentials client is added to the store."""
    if await store.principal(SERVICE_PRINCIPAL) is None:
        await store.add_principal(SERVICE_PRINCIPAL, "service", "Directory sync")
    async with running_issuer(store, **(issuer or {})) as idp, running_worker(env, store) as pim:
        config = api_settings(idp, pim.task_queue, **settings)
        audiences = tuple(a.strip() for a in (config.oidc_audience or "").split(","))
        verifier = OidcVerifier(OidcConfig(issuer=idp.issuer, audiences=audiences, principal_claim=config.oidc_principal_claim))
        services = ApiServices(config, store, PimClient(env.client, pim.task_queue, signer=TEST_SIGNER), verifier)
        async with serving(lambda base: create_app(services)) as base, http_client(timeout=30) as http:
            yield Api(base, http, idp, pim, services, store)
