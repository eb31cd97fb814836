"""Serving an ASGI app over real HTTP on 127.0.0.1, in the test's event loop: the
development issuer (pim/identity/issuer) as the tests' identity provider.

    async with running_issuer(demo) as idp:
        response = await idp.http.get(idp.url("/.well-known/openid-configuration"))

Everything that talks to it must be asynchronous (httpx.AsyncClient, OidcVerifier):
the server runs in the same event loop, so a blocking call would wait for itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from pim.identity.issuer import IssuerClient, IssuerSettings, create_issuer_app, pim_cli_client
from pim.runtime.http import http_client
from pim.store import Store

AUDIENCE = "pim-api"
SERVICE_ID = "svc-sync"
SERVICE_SECRET = "s3rvice-secret-for-tests"
SERVICE_PRINCIPAL = "svc-directory-sync"
TEST_CLIENTS = (pim_cli_client(), IssuerClient.service(SERVICE_ID, SERVICE_SECRET, SERVICE_PRINCIPAL))


@asynccontextmanager
async def serving(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """`make_app(base_url)` served by uvicorn on a free loopback port until the block
    ends; yields the base URL. The socket is bound before the app is made, so the
    app knows its own URL and no other process can take the port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(make_app(base), log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # it failed: raise why
                    raise RuntimeError("uvicorn stopped before it listened")
                await asyncio.sleep(0.01)
        yield base
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Idp:
    """The running issuer: its URL, its settings, and an HTTP client that follows no redirect."""

    issuer: str
    settings: IssuerSettings
    http: httpx.AsyncClient

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"


@asynccontextmanager
async def running_issuer(store: Store, prefix: str = "", **settings: Any) -> AsyncIterator[Idp]:
    """The issuer for `store` on loopback (mounted under `prefix` when given, as the
    API mounts it), with the test clients: `pim-cli` and the service `svc-sync`."""
    settings.setdefault("clients", TEST_CLIENTS)
    made: dict[str, IssuerSettings] = {}

    def make(base: str) -> Any:
        made["settings"] = IssuerSettings(issuer=base + prefix, audience=AUDIENCE, **settings)
        app = create_issuer_app(store, made["settings"])
        if not prefix:
            return app
        from starlette.applications import Starlette
        from starlette.routing import Mount

        return Starlette(routes=[Mount(prefix, app=app)])

    async with serving(make) as base, http_client(timeout=10, follow_redirects=False) as http:
        yield Idp(base + prefix, made["settings"], http)
