"""Cross-site request forgery: every POST to the portal carries the session's token,
in the form's hidden field `csrf` (`{{ csrf_field() }}` in a template) or in the
`X-CSRF-Token` header (htmx requests: the base template sets it). Anything else
is refused with 403 before any handler runs, whatever the route: a new page's
forms are protected without asking.

The token is random, made when the session begins (at sign-in) and kept in it;
SameSite=Lax on the cookie is the second line."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pim.portal.session import is_portal_path

FIELD = "csrf"
HEADER = b"x-csrf-token"
KEY = "csrf"  # in the session
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM = 256 * 1024  # a portal form is a few hundred bytes


def new_token() -> str:
    return secrets.token_urlsafe(32)


def session_token(session: dict[str, Any]) -> str:
    """The session's token, made on first use."""
    token = session.get(KEY)
    if not isinstance(token, str) or not token:
        token = session[KEY] = new_token()
    return token


def _matches(expected: Any, given: str | None) -> bool:
    return isinstance(expected, str) and bool(expected) and given is not None and hmac.compare_digest(expected, given)


class CsrfMiddleware:
    """Inside SessionMiddleware: refuses an unsafe request to a portal path whose token
    is missing or wrong; the body it read is handed on to the app unchanged."""

    def __init__(self, app: ASGIApp, refused: Any) -> None:
        self.app = app
        self.refused = refused  # (Request) -> Response: the 403 page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in SAFE or not is_portal_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        expected = scope.get("session", {}).get(KEY)
        header = dict(scope.get("headers") or []).get(HEADER)
        if header is not None:
            if _matches(expected, header.decode("latin-1")):
                await self.app(scope, receive, send)
            else:
                await self.refused(Request(scope))(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if not complete or not _matches(expected, _form_token(scope, body)):
            await self.refused(Request(scope))(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, unless it is larger than MAX_FORM."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _form_token(scope: Scope, body: bytes) -> str | None:
    """The `csrf` field of a urlencoded form (the portal's forms are all urlencoded)."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return None
    values = [value for name, value in fields if name == FIELD]
    return values[0] if len(values) == 1 else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # the disconnect, when it comes

    return replayed
