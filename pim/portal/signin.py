"""Signing in and out: `/signin` sends the browser to the issuer (authorization code
with PKCE), `/auth/callback` takes the code back and begins the session, `/signout`
(a POST, with the CSRF token) ends it.

`next` (the page the visitor wanted) travels in the session, not through the
issuer, and only a same-site path is ever followed (pages.safe_next)."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from starlette.requests import Request

from pim.portal.backend import ApiError, Backend, SignInAgain
from pim.portal.oidc import Pending, SignInFailed
from pim.portal.pages import (
    SignInRequired,
    begin_session,
    message_page,
    oidc_of,
    portal_router,
    safe_next,
    signed_in,
    signin_url,
)

router = portal_router()
PENDING = "oauth"


def redirect_uri(request: Request) -> str:
    """Where the issuer sends the browser back: PIM_PORTAL_URL's, else this host's."""
    configured = request.app.state.services.settings.portal_url
    base = configured.rstrip("/") if configured else f"{request.url.scheme}://{request.headers.get('host', 'localhost')}"
    return f"{base}/auth/callback"


@router.get("/signin")
async def sign_in(request: Request, next: str = "/") -> Response:
    target = safe_next(next)
    try:
        await signed_in(request)
        return RedirectResponse(target, status_code=303)  # already signed in
    except SignInRequired:
        pass
    try:
        url, pending = await oidc_of(request).start(redirect_uri(request), target)
    except SignInFailed as error:
        return _failed(request, str(error), target, 503)
    request.session[PENDING] = pending.as_dict()
    return RedirectResponse(url, status_code=303)


@router.get("/auth/callback")
async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    pending = Pending.from_dict(request.session.pop(PENDING, None))
    if pending is None or not state or state != pending.state:
        return _failed(request, "This sign-in was not started here, or it has expired.", pending.next if pending else "/", 400)
    if error or not code:
        reason = "you declined" if error == "access_denied" else f"the issuer answered {error or 'no code'}"
        return _failed(request, f"The sign-in did not complete: {reason[:100]}.", pending.next, 400)
    try:
        tokens = await oidc_of(request).exchange(code, pending)
        me = await Backend(request, tokens.access_token).get("/api/me")
    except SignInFailed as failure:
        return _failed(request, str(failure), pending.next, 502)
    except SignInAgain:
        return _failed(request, "The API does not accept this issuer's token.", pending.next, 403)
    except ApiError as refused:
        return _failed(request, f"You cannot use PIM: {refused.message}", pending.next, refused.status)
    if me.get("kind") != "user":
        return _failed(request, "Only people sign in to the portal.", pending.next, 403)
    begin_session(request.session, me, tokens)
    return RedirectResponse(pending.next, status_code=303)


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    request.session.clear()
    return message_page(request, "Signed out", "You are signed out of PIM.", 200, links={"Sign in again": "/signin"})


def _failed(request: Request, message: str, next_path: str, status: int) -> Response:
    return message_page(request, "Sign-in failed", message, status, links={"Try again": signin_url(next_path)})
