"""The portal: people's pages, served by the API's own app (issue 16, SPEC 10).

Server-rendered (Jinja2 templates in templates/, a little htmx from static/), it
is a client of the API like any other: each page calls the API in-process with
the signed-in person's token (backend.py), and the API authorizes, rate-limits
and refuses. People sign in with the OIDC authorization-code flow with PKCE
against PIM_OIDC_ISSUER (signin.py, oidc.py); the session is one encrypted cookie
(session.py); every POST carries a CSRF token (csrf.py).

| module | pages |
|---|---|
| signin.py | /signin, /auth/callback, /signout |
| access.py | / (My access): activate, deactivate, extend |
| requests.py | /requests (My requests), /requests/{id} (a request's page) |
| approvals.py | /approvals (the approver's inbox), Approve and Deny on a request's page |

Every module of this package that defines `router` (made by
`pages.portal_router()`) is included by `install_portal`: a new page family is a
new module, nothing else to register."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from pim.runtime.settings import PimSettings

STATIC = Path(__file__).parent / "static"
FIRST = ("signin",)  # included before the others (their paths are the most specific)


def page_modules() -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    return [*FIRST, *(name for name in found if name not in FIRST)]


def install_portal(app: FastAPI, settings: PimSettings) -> None:
    """The portal's routes, static files, session and CSRF middleware, and its error
    pages, on the API's app. Call before the app's outer middleware is added (the
    Host allow-list and the request context wrap the portal too)."""
    from pim.api import errors
    from pim.portal import pages
    from pim.portal.backend import ApiError, SignInAgain
    from pim.portal.csrf import CsrfMiddleware
    from pim.portal.oidc import PortalOidc
    from pim.portal.session import SETTING, SessionMiddleware, configured_session_codec

    codec = configured_session_codec(settings)
    if codec is None:
        raise ValueError(
            f"{SETTING} is not set: the portal seals its session cookies with it (`pim keys new`), or set PIM_PORTAL=false"
        )
    app.state.portal_oidc = PortalOidc(settings)
    issuer = urlsplit(settings.oidc_issuer or "")
    app.state.portal_issuer_origin = f"{issuer.scheme}://{issuer.netloc}" if issuer.netloc else ""
    for name in page_modules():
        module = importlib.import_module(f"pim.portal.{name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(pages.SignInRequired, pages.sign_in_required)
    app.add_exception_handler(SignInAgain, pages.sign_in_again)
    app.add_exception_handler(ApiError, pages.api_refused)
    for exception, handler in errors.HANDLERS.items():
        if exception is not errors.GraphError and exception is not errors.Refused:
            app.add_exception_handler(exception, pages.html_on_portal_paths(handler))
    app.add_middleware(CsrfMiddleware, refused=pages.csrf_refused)
    app.add_middleware(SessionMiddleware, codec=codec, lifetime=settings.portal_session_lifetime.total_seconds())


__all__ = ["install_portal", "page_modules"]
