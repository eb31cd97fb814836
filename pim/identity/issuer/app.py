"""The issuer as an ASGI application (Starlette): its routes, the sign-in with a
TOTP code, and the discovery document.

| route | what |
|---|---|
| GET `/.well-known/openid-configuration` | discovery (OpenID Connect Discovery 1.0, RFC 8414) |
| GET `/jwks` | the public signing key, with its `kid` |
| GET, POST `/authorize` | the code flow's sign-in form; its POST signs in and redirects with the code |
| POST `/token` | authorization_code, device_code, refresh_token, client_credentials |
| POST `/device_authorization` | RFC 8628: a device code and a user code |
| GET, POST `/device` | the verification page: the user code, then the sign-in (or Deny) |
| GET, POST `/userinfo` | `sub`, and `name`, `email` by scope, for a user's access token |

Every URL it publishes derives from `settings.issuer`, so it can be served alone
or mounted under a prefix."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oidc.discovery import OpenIDProviderMetadata
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from pim.identity.issuer import pages
from pim.identity.issuer.config import GRANT_TYPES, IssuerSettings
from pim.identity.issuer.keys import ALGORITHM, IssuerKey, load_or_create_key
from pim.identity.issuer.server import BufferedRequest, Client, IssuerServer, SignedIn, to_response, user_info
from pim.identity.issuer.state import DeviceRecord, IssuerState
from pim.identity.totp_check import AttemptScope, verify_totp
from pim.runtime.logging import get_logger
from pim.store import Store

log = get_logger("pim.identity.issuer")

MAX_BODY = 64 * 1024  # a form or token request is a few hundred bytes
MAX_FIELDS = 64
HTML_HEADERS = {
    "Cache-Control": "no-store",
    # No script at all, no framing (clickjacking), no base or referrer games.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
WRONG_SIGN_IN = "Sign-in failed: the user or the code is not right. Wait for the next code and try again."
LOCKED_SIGN_IN = "Too many wrong codes: sign-in is locked for a while. Try again later, or ask an administrator."
MISSING_SIGN_IN = "Enter your user name and the current code of your authenticator app."
NO_SUCH_USER_CODE = "That user code is not valid, or it has expired: start again on your device."


class BadBody(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


@dataclass(frozen=True)
class Refusal:
    message: str
    status: int = 400


class AccessTokenValidator(JWTBearerTokenValidator):
    """RFC 9068 validation of this issuer's own access tokens (for /userinfo)."""

    def __init__(self, settings: IssuerSettings, key: IssuerKey) -> None:
        super().__init__(issuer=settings.issuer, resource_server=settings.audience)
        self.key = key

    def get_jwks(self) -> Any:
        return self.key.public_key_set()


def discovery_document(settings: IssuerSettings, server: IssuerServer) -> dict[str, Any]:
    document = {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.url("/authorize"),
        "token_endpoint": settings.url("/token"),
        "device_authorization_endpoint": settings.url("/device_authorization"),
        "userinfo_endpoint": settings.url("/userinfo"),
        "jwks_uri": settings.url("/jwks"),
        "scopes_supported": list(server.scopes_supported),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "amr", "nonce", "name", "email"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    OpenIDProviderMetadata(document).validate()  # authlib's check of the metadata's rules
    return document


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded form of the body (nothing for another content type), read
    without ever holding more than MAX_BODY bytes."""
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadBody(413, f"the request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return []
    try:
        return parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadBody(400, "the form is not UTF-8, or has too many fields") from None


def _query(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadBody(400, "too many parameters") from None


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HTML_HEADERS)


class Issuer:
    def __init__(self, store: Store, settings: IssuerSettings) -> None:
        self.store, self.settings = store, settings
        self.key = load_or_create_key(settings.key_file)
        self.state = IssuerState()
        self.server = IssuerServer(settings, self.key, self.state)
        self.validator = AccessTokenValidator(settings, self.key)
        self.discovery = discovery_document(settings, self.server)

    # --- published documents -----------------------------------------------------------------

    async def openid_configuration(self, request: Request) -> Response:
        return JSONResponse(self.discovery, headers={"Cache-Control": "public, max-age=300"})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.key.jwks(), headers={"Cache-Control": "public, max-age=300"})

    # --- signing in --------------------------------------------------------------------------

    async def sign_in(self, principal_id: str, code: str) -> SignedIn | Refusal:
        """The user, when `code` is their current TOTP code: verified and used up by
        verify_totp, which counts the attempt against the lockout first."""
        if not principal_id or not code:
            return Refusal(MISSING_SIGN_IN)
        principal = await self.store.principal(principal_id)
        if principal is None or principal.kind != "user":
            return Refusal(WRONG_SIGN_IN)
        verdict = await verify_totp(
            self.store,
            principal.id,
            code,
            use_key=f"dev-issuer:{uuid.uuid4().hex}",
            at=datetime.now(UTC),
            scope=AttemptScope("sign_in"),
        )
        if not verdict.accepted:
            locked = any(v.code == "mfa_locked" for v in verdict.violations)
            log.info("dev issuer sign-in refused", principal_id=principal.id, reason=verdict.violations[0].code)
            return Refusal(LOCKED_SIGN_IN, 429) if locked else Refusal(WRONG_SIGN_IN)
        return SignedIn(principal.id, principal.display_name or principal.id, principal.email, auth_time=int(time.time()))

    async def still_a_user(self, principal_id: str) -> bool:
        principal = await self.store.principal(principal_id)
        return principal is not None and principal.kind == "user"

    # --- the authorization endpoint ----------------------------------------------------------

    def _refused(self, oauth: BufferedRequest, error: OAuth2Error) -> Response:
        """To the client when its redirect URI was validated; otherwise to the person
        at the browser, never to an unchecked URI (RFC 6749 section 4.1.2.1)."""
        if error.redirect_uri:
            response: Response = self.server.handle_error_response(oauth, error)
            return response
        # The description can quote what the request said: it goes to the log, not to the page.
        log.info("dev issuer authorization request refused", error=error.error, description=error.description)
        message = f"The application sent a sign-in request this issuer cannot serve ({error.error})."
        return _html(pages.message_page("This sign-in request cannot be served", message), 400)

    async def authorize(self, request: Request) -> Response:
        if request.method == "GET":
            raw, form = request.url.query, {}
        else:
            form = dict(await read_form(request))
            raw = form.get("authorization_request", "")
        oauth = BufferedRequest("GET", self.settings.url("/authorize"), request.headers, query=_query(raw))
        try:
            grant = self.server.get_consent_grant(oauth)
        except OAuth2Error as error:
            return self._refused(oauth, error)
        client: Client = oauth.client
        user = form.get("user", "").strip()

        def form_page(error: str | None = None, status: int = 200) -> Response:
            page = pages.sign_in_page(
                action=self.settings.url("/authorize"),
                client_name=client.name,
                scope=oauth.scope or "",
                authorization_request=raw,
                user=user,
                error=error,
            )
            return _html(page, status)

        if request.method == "GET":
            return form_page()
        signed_in = await self.sign_in(user, form.get("code", "").strip())
        if isinstance(signed_in, Refusal):
            return form_page(signed_in.message, signed_in.status)
        log.info("dev issuer sign-in", principal_id=signed_in.principal_id, client_id=client.get_client_id(), flow="code")
        response: Response = self.server.create_authorization_response(oauth, grant_user=signed_in, grant=grant)
        return response

    # --- the device flow ---------------------------------------------------------------------

    def _asking(self, record: DeviceRecord | None) -> tuple[str, str] | None:
        client = self.server.query_client(record.client_id) if record and record.pending else None
        return (client.name, record.scope) if client and record else None

    async def device(self, request: Request) -> Response:
        action = self.settings.url("/device")
        if request.method == "GET":
            user_code = request.query_params.get("user_code", "")
            record = self.state.device_by_user_code(user_code) if user_code else None
            error = NO_SUCH_USER_CODE if user_code and not (record and record.pending) else None
            page = pages.device_page(
                action=action, user_code=user_code, asking=self._asking(record), error=error, user_code_error=True
            )
            return _html(page)
        form = dict(await read_form(request))
        user_code, user = form.get("user_code", "").strip(), form.get("user", "").strip()
        record = self.state.device_by_user_code(user_code)

        def refused(message: str, status: int = 400) -> Response:
            page = pages.device_page(action=action, user_code=user_code, user=user, asking=self._asking(record), error=message)
            return _html(page, status)

        if record is None or not record.pending:
            return refused(NO_SUCH_USER_CODE)
        if form.get("decision") == "deny":
            record.denied = True
            log.info("dev issuer device request denied", client_id=record.client_id)
            return _html(pages.message_page("Request denied", "The device gets no access. You can close this page."))
        signed_in = await self.sign_in(user, form.get("code", "").strip())
        if isinstance(signed_in, Refusal):
            return refused(signed_in.message, signed_in.status)
        current = self.state.device_by_user_code(user_code)
        if current is not record or not current.pending:  # denied, or expired, while the code was checked
            return refused(NO_SUCH_USER_CODE)
        current.user = signed_in
        log.info("dev issuer sign-in", principal_id=signed_in.principal_id, client_id=record.client_id, flow="device")
        return _html(
            pages.message_page(
                "Signed in", f"Your device is signed in as {signed_in.principal_id}. You can close this page and return to it."
            )
        )

    async def device_authorization(self, request: Request) -> Response:
        oauth = BufferedRequest(
            "POST", self.settings.url("/device_authorization"), request.headers, form=await read_form(request)
        )
        response: Response = self.server.create_endpoint_response("device_authorization", oauth)
        return response

    # --- the token endpoint ------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        oauth = BufferedRequest("POST", self.settings.url("/token"), request.headers, form=await read_form(request))
        if oauth.payload.grant_type == "refresh_token":
            # A refresh signs nobody in again, but someone removed from the store gets nothing more.
            record = self.state.refresh.get(oauth.payload.data.get("refresh_token") or "")
            if record is not None and not await self.still_a_user(record.user.principal_id):
                self.state.revoke_family(record.family)
        response: Response = self.server.create_token_response(oauth)
        return response

    # --- userinfo ----------------------------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidTokenError("A bearer access token is required.")
            claims = self.validator.authenticate_token(token.strip())
            self.validator.validate_token(claims, ["openid"], None)
            principal_id = claims["sub"]
            if "auth_time" not in claims or not await self.still_a_user(principal_id):
                raise InvalidTokenError("The token does not name a signed-in user.")
        except OAuth2Error as error:
            return to_response(*error())
        principal = await self.store.principal(principal_id)
        assert principal is not None  # still_a_user
        user = SignedIn(principal.id, principal.display_name or principal.id, principal.email, auth_time=claims["auth_time"])
        return JSONResponse(dict(user_info(user, claims.get("scope", ""))), headers={"Cache-Control": "no-store"})


def _guarded(handler: Any) -> Any:
    """A malformed body gets an OAuth-style JSON error rather than a stack trace."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except BadBody as bad:
            return JSONResponse({"error": "invalid_request", "error_description": bad.description}, status_code=bad.status)

    return endpoint


def create_issuer_app(store: Store, settings: IssuerSettings) -> Starlette:
    """The development issuer as an ASGI app, its signing key loaded (or created)
    from `settings.key_file`. `store` must be open (with the TOTP secrets' key);
    the app does not close it."""
    # authlib logs issued tokens at DEBUG: they never reach a log line here.
    logging.getLogger("authlib").setLevel(logging.INFO)
    issuer = Issuer(store, settings)
    routes = [
        Route("/.well-known/openid-configuration", issuer.openid_configuration, methods=["GET"]),
        Route("/jwks", issuer.jwks, methods=["GET"]),
        Route("/authorize", _guarded(issuer.authorize), methods=["GET", "POST"]),
        Route("/token", _guarded(issuer.token), methods=["POST"]),
        Route("/device_authorization", _guarded(issuer.device_authorization), methods=["POST"]),
        Route("/device", _guarded(issuer.device), methods=["GET", "POST"]),
        Route("/userinfo", issuer.userinfo, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.issuer = issuer  # for whoever mounts it: the key's kid, the state
    return app
