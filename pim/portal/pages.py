"""What every page uses: who is signed in (`Viewer`, refreshed when its token nears
its end), the templates and `render`, flash messages, redirects, and the router
every page module registers on.

    router = portal_router()

    @router.get("/things")
    async def things(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
        found = await backend(request, viewer).get("/api/things")
        return render(request, "things.html", viewer, things=found)

A visitor who is not signed in never reaches a handler: `signed_in` sends them to
/signin?next=<the page>."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from pim.domain import authorization as authz
from pim.portal import csrf, formats
from pim.portal.backend import ApiError
from pim.portal.oidc import PortalOidc, SignInFailed, Tokens
from pim.portal.session import is_portal_path
from pim.runtime.logging import get_logger

log = get_logger("pim.portal")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters.update(formats.FILTERS)
REFRESH_MARGIN = 60.0  # seconds before the access token's end when it is renewed
SIGN_IN_PATHS = ("/signin", "/auth/callback", "/signout")
FLASH = "flash"
NAV = (("My access", "/"), ("My requests", "/requests"), ("Approvals", "/approvals"), ("Administration", "/admin"))


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, as the session holds them."""

    principal_id: str
    name: str
    roles: tuple[str, ...]
    access_token: str
    csrf: str
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None

    @property
    def is_admin(self) -> bool:
        return bool(set(self.roles) & authz.GROUP_ROLES)

    def sign_in_claims(self) -> dict[str, Any]:
        """What the API vouches for as MFA evidence (pim/identity/oidc.check_sign_in reads it)."""
        return {"auth_time": self.auth_time, "amr": list(self.amr), "acr": self.acr}


class SignInRequired(Exception):
    """Raised by `signed_in`: the visitor goes to the sign-in, and comes back here."""


def portal_router() -> APIRouter:
    """The router of a page module: HTML answers, nothing in /openapi.json."""
    return APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def oidc_of(request: Request) -> PortalOidc:
    found: PortalOidc = request.app.state.portal_oidc
    return found


# --- the session's person ---------------------------------------------------------------------


def remember(session: dict[str, Any], tokens: Tokens) -> None:
    session["tokens"] = {"access": tokens.access_token, "refresh": tokens.refresh_token, "exp": tokens.expires_at}


def begin_session(session: dict[str, Any], me: dict[str, Any], tokens: Tokens) -> None:
    """A new session for who signed in: everything before is forgotten, a new CSRF token."""
    claims = tokens.claims
    auth_time = claims.get("auth_time")
    amr = claims.get("amr")
    session.clear()
    session.update(
        born=int(time.time()),
        user={
            "id": str(me["principal_id"]),
            "name": str(tokens.id_claims.get("name") or me["principal_id"])[:200],
            "roles": [str(r) for r in me.get("roles", [])],
        },
        signin={
            "auth_time": auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None,
            "amr": [m for m in amr if isinstance(m, str)][:10] if isinstance(amr, list) else [],
            "acr": claims.get("acr") if isinstance(claims.get("acr"), str) else None,
        },
        csrf=csrf.new_token(),
    )
    remember(session, tokens)


async def signed_in(request: Request) -> Viewer:
    """The page's dependency: who is signed in, their token renewed when it nears its end."""
    session = request.session
    user, tokens = session.get("user"), session.get("tokens")
    if not isinstance(user, dict) or not isinstance(tokens, dict) or not tokens.get("access"):
        raise SignInRequired()
    if float(tokens.get("exp") or 0) - time.time() < REFRESH_MARGIN:
        if not tokens.get("refresh"):
            session.clear()
            raise SignInRequired()
        try:
            remember(session, await oidc_of(request).refresh(str(tokens["refresh"])))
        except SignInFailed:
            session.clear()
            raise SignInRequired() from None
    signin = session.get("signin") or {}
    return Viewer(
        principal_id=str(user["id"]),
        name=str(user.get("name") or user["id"]),
        roles=tuple(user.get("roles") or ()),
        access_token=str(session["tokens"]["access"]),
        csrf=csrf.session_token(session),
        auth_time=signin.get("auth_time"),
        amr=tuple(signin.get("amr") or ()),
        acr=signin.get("acr"),
    )


# --- where to go ------------------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """A same-site path to return to after sign-in; anything else is the home page."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c in "\\" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(SIGN_IN_PATHS):
        return "/"
    return value


def signin_url(next_path: str) -> str:
    return f"/signin?next={quote(safe_next(next_path), safe='/')}"


def here(request: Request) -> str:
    """This page's path and query, to come back to."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def redirect(url: str) -> RedirectResponse:
    """After a POST: 303, so the browser GETs the page (no form sent twice)."""
    return RedirectResponse(url, status_code=303)


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message for the next page this person sees (kind: ok | error)."""
    messages = request.session.setdefault(FLASH, [])
    messages.append({"kind": kind, "text": text[:500]})
    del messages[:-5]


# --- pages ------------------------------------------------------------------------------------

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def security_headers(request: Request) -> dict[str, str]:
    issuer = getattr(request.app.state, "portal_issuer_origin", "")
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' {issuer}".rstrip()
    )
    return {**HEADERS, "Content-Security-Policy": policy}


@pass_context
def csrf_field(context: Any) -> Markup:
    """`{{ csrf_field() }}` in every form that posts."""
    return Markup(f'<input type="hidden" name="{csrf.FIELD}" value="{escape(context.get("csrf", ""))}">')


TEMPLATES.env.globals["csrf_field"] = csrf_field


LAYOUT = frozenset({"viewer", "csrf", "nav", "current", "flashes", "request"})  # what base.html reads


def render(
    request: Request, template: str, viewer: Viewer | None, status: int = 200, section: str | None = None, **context: Any
) -> Response:
    """`template` with the layout's needs: the viewer, the navigation, the CSRF token,
    flash messages (taken: shown once). `section`: the navigation entry the page belongs
    to, when its path does not say (a request's page, opened by its approver)."""
    nav = [(label, url) for label, url in NAV if url != "/admin" or (viewer is not None and viewer.is_admin)]
    clash = LAYOUT & context.keys()
    if clash:
        raise ValueError(f"render: {sorted(clash)} are the layout's own names; give the template another")
    values = {
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "nav": nav,
        "current": section or request.url.path,
        "flashes": request.session.pop(FLASH, []) if "session" in request.scope and not _is_htmx(request) else [],
        **context,
    }
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status, headers=security_headers(request))


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def message_page(
    request: Request, title: str, message: str, status: int, viewer: Viewer | None = None, links: dict[str, str] | None = None
) -> Response:
    """A page that says one thing, with links (text -> URL) onwards."""
    return render(request, "message.html", viewer, status=status, title=title, message=message, links=links or {})


# --- answers for what stops a page ------------------------------------------------------------


async def sign_in_required(request: Request, error: Exception) -> Response:
    """To the sign-in, back here afterwards. htmx's own requests (a live fragment) get
    HX-Redirect: the whole page goes, and comes back to the page, not the fragment."""
    if _is_htmx(request):
        page = urlsplit(request.headers.get("hx-current-url", "/"))
        target = signin_url(page.path + (f"?{page.query}" if page.query else ""))
        return Response(status_code=204, headers={"HX-Redirect": target})
    if request.method != "GET":
        referer = urlsplit(request.headers.get("referer", "/"))
        return redirect(signin_url(referer.path or "/"))
    return RedirectResponse(signin_url(here(request)), status_code=303)


async def sign_in_again(request: Request, error: Exception) -> Response:
    """The API refused the session's token: it is forgotten, and the person signs in again."""
    request.session.clear()
    return await sign_in_required(request, error)


def csrf_refused(request: Request) -> Response:
    return message_page(
        request,
        "This form cannot be accepted",
        "The form was sent without this page's security token, or with an old one. Go back, reload the page and send it again.",
        403,
        links={"My access": "/"},
    )


async def api_refused(request: Request, error: Exception) -> Response:
    """A refusal of the API that the page did not handle itself: said in a page."""
    assert isinstance(error, ApiError)
    titles = {403: "Not allowed", 404: "Not found", 409: "Already changed", 429: "Too many requests"}
    title = titles.get(error.status, "Refused" if error.status < 500 else "Something went wrong")
    viewer = await _viewer_or_none(request)
    return message_page(request, title, error.message, error.status, viewer, links={"My access": "/"})


def html_on_portal_paths(api_handler: Any) -> Any:
    """An error handler of the API that answers with a page on the portal's paths
    (a page not found, a malformed query, a failure) and as before elsewhere."""

    async def handler(request: Request, error: Exception) -> Response:
        if not is_portal_path(request.url.path) or "session" not in request.scope:
            answer: Response = await api_handler(request, error)
            return answer
        status = getattr(error, "status_code", 400 if isinstance(error, RequestValidationError) else 500)
        if status >= 500:
            log.exception("portal failure", error_type=type(error).__name__)
        viewer = await _viewer_or_none(request)
        title, message = PROBLEMS.get(status, PROBLEMS[500 if status >= 500 else 400])
        request_id = getattr(request.state, "request_id", "")
        if status >= 500 and request_id:
            message += f" Request id: {request_id}."
        return message_page(request, title, message, status, viewer, links={"My access": "/"})

    return handler


PROBLEMS = {
    400: ("Not understood", "This address or form is not one the portal understands."),
    404: ("Not found", "There is no such page."),
    405: ("Not found", "There is no such page."),
    500: ("Something went wrong", "The page failed; try again in a moment."),
}


async def _viewer_or_none(request: Request) -> Viewer | None:
    """Who is signed in, for the navigation of an error page, without renewing anything."""
    if "session" not in request.scope:
        return None
    user, tokens = request.session.get("user"), request.session.get("tokens")
    if not isinstance(user, dict) or not isinstance(tokens, dict):
        return None
    return Viewer(
        principal_id=str(user.get("id")),
        name=str(user.get("name") or user.get("id")),
        roles=tuple(user.get("roles") or ()),
        access_token="",
        csrf=csrf.session_token(request.session),
    )


async def form_values(request: Request) -> dict[str, str]:
    """The posted form's fields (the CSRF token left out), stripped of surrounding blanks."""
    form = await request.form()
    return {name: value.strip() for name, value in form.items() if isinstance(value, str) and name != csrf.FIELD}


# --- live regions -----------------------------------------------------------------------------


def live_region(request: Request, viewer: Viewer, template: str, source: str, every: str | None, **context: Any) -> Markup:
    """`template` rendered inside a region that htmx reloads from `source` every `every`
    ("2s"; None: it stays as it is). The region carries a digest of what it shows, and
    `source` answers 204 while nothing changed (`unchanged`), so htmx swaps only news:
    focus and scroll stay where they are."""
    inner = TEMPLATES.get_template(template).render({"request": request, "viewer": viewer, "csrf": viewer.csrf, **context})
    digest = hashlib.sha256(inner.encode()).hexdigest()[:16]
    polling = f' hx-get="{escape(source)}?v={digest}" hx-trigger="every {escape(every)}" hx-swap="outerHTML"' if every else ""
    return Markup(f'<div class="live" data-digest="{digest}"{polling}>{inner}</div>')


def unchanged(request: Request, region: Markup) -> bool:
    """Whether htmx already shows `region` (its digest is the one it asked with)."""
    asked = request.query_params.get("v")
    return _is_htmx(request) and asked is not None and f'data-digest="{asked}"' in region[:120]


def fragment(request: Request, region: Markup) -> Response:
    """A live region's answer: 204 (nothing to swap) when unchanged, else the region."""
    if unchanged(request, region):
        return Response(status_code=204)
    return HTMLResponse(str(region), headers=security_headers(request))
