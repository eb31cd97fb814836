"""`pim api`: the HTTP API, an ASGI application (FastAPI).

    app = create_app(services)        # tests and `pim dev`: services made by the caller
    app = create_app()                # `pim api`: services opened from PIM_* at start-up

Microsoft Graph's PIM for Groups resources under /v1.0 (pim/api/graph), native
endpoints under /api (pim/api/native), /healthz and /readyz, /openapi.json.
Every operation but the probes needs a bearer token (pim/api/auth.py). With
PIM_PORTAL (the default), the portal's pages too (pim/portal): they sign people in
with a session cookie and call the API with its token, never the reverse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pim.api import errors
from pim.api.middleware import HostAllowList, RequestContext
from pim.api.services import ApiServices
from pim.runtime.settings import PimSettings, load_settings

TITLE = "PIM for Groups"
VERSION = "1.0"


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def create_app(services: ApiServices | None = None, settings: PimSettings | None = None) -> FastAPI:
    """The API. With `services`, the caller owns them; without, they are opened from
    the settings when the app starts and closed when it stops."""
    settings = settings or (services.settings if services else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        opened = await ApiServices.open(settings)
        app.state.services = opened
        try:
            yield
        finally:
            await opened.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description="Just-in-time access to groups: Microsoft Graph's PIM for Groups API, and native endpoints.",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
        docs_url=None,  # no third-party scripts; /openapi.json is the document
        redoc_url=None,
    )
    if services is not None:
        app.state.services = services  # also when the server runs without lifespan events
    for exception, handler in errors.HANDLERS.items():
        app.add_exception_handler(exception, handler)
    _include_routers(app)
    if settings.portal:  # the people's pages (pim/portal), inside the outer middleware below
        from pim.portal import install_portal

        install_portal(app, settings)
    origins = _listed(settings.api_cors_origins)
    if origins:  # closed unless configured: the API is for bearer tokens, not ambient cookies
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "client-request-id"],
            expose_headers=["request-id", "client-request-id", "Retry-After"],
        )
    app.add_middleware(HostAllowList, allowed=_listed(settings.api_allowed_hosts))
    app.add_middleware(RequestContext)
    return app


def _include_routers(app: FastAPI) -> None:
    from pim.api import health
    from pim.api.graph import router as graph
    from pim.api.native import router as native

    app.include_router(health.router)
    app.include_router(graph)
    app.include_router(native)


def allowed_hosts_with(settings: PimSettings, *hosts: str) -> str:
    """The settings' allow-list plus `hosts` (the name `pim dev` prints)."""
    return ",".join(dict.fromkeys([*_listed(settings.api_allowed_hosts), *hosts]))


__all__: list[Any] = ["create_app", "allowed_hosts_with"]
