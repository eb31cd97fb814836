"""The OAuth 2.0 / OpenID Connect machinery, from authlib's server components:
`AuthorizationServer` with the authorization code grant (PKCE S256 through
`CodeChallenge`, ID tokens through `OpenIDCode`), the device code grant and its
authorization endpoint (RFC 8628), refresh tokens, client credentials, and JWT
access tokens (RFC 9068, `JWTBearerTokenGenerator`).

authlib integrates with Flask and Django only; this is the Starlette side of it. A
handler reads the request body asynchronously, then hands authlib a `BufferedRequest`
(an `OAuth2Request` over what was read) and turns authlib's answer, a
(status, body, headers) triple, into a Starlette `Response`. authlib runs
synchronously in the event loop: everything it calls here is in memory. The
store is asked (asynchronously) by the handlers, before authlib runs."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import OpenIDCode, OpenIDToken, UserInfo
from starlette.datastructures import Headers
from starlette.responses import Response

from pim.identity.issuer.config import (
    AUTHORIZATION_CODE,
    DEVICE_CODE,
    SCOPES,
    IssuerClient,
    IssuerSettings,
    is_loopback,
)
from pim.identity.issuer.keys import ALGORITHM, IssuerKey
from pim.identity.issuer.state import CodeRecord, DeviceRecord, IssuerState, RefreshRecord, SignedIn
from pim.runtime.logging import get_logger

log = get_logger("pim.identity.issuer")

SECRET_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
ANY_CLIENT_AUTH = [*SECRET_AUTH_METHODS, "none"]  # a public client sends its client_id and nothing else
SLOW_DOWN_STEP = 5.0  # RFC 8628 section 3.5: each slow_down adds 5 seconds to the interval


# --- the Starlette adapter -------------------------------------------------------------------


class Payload(OAuth2Payload):
    """Parameters that were read already, with every value of a repeated one (authlib refuses repeats)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class BufferedRequest(OAuth2Request):
    """An `OAuth2Request` over a request whose body the handler has read. Its
    parameters are the query's for a GET, the form's otherwise; `uri` is the
    endpoint's public URL (from the issuer, whatever Host the request named)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers,
        query: Sequence[tuple[str, str]] = (),
        form: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = Payload(query)
        self._form = Payload(form)
        self.payload = self._args if method == "GET" else self._form

    @property
    def args(self) -> dict[str, str]:
        return self._args.data

    @property
    def form(self) -> dict[str, str]:
        return self._form.data


class BufferedJson(JsonPayload):
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class BufferedJsonRequest(JsonRequest):
    """A JSON request whose body was read and parsed (for authlib's JSON endpoints)."""

    def __init__(self, method: str, uri: str, headers: Headers, data: Any) -> None:
        super().__init__(method, uri, headers)
        self.payload = BufferedJson(data)


def to_response(status: int, body: Any, headers: Sequence[tuple[str, str]]) -> Response:
    content = json.dumps(body) if isinstance(body, dict) else (body or "")
    return Response(content, status_code=status, headers=dict(headers))


# --- clients ---------------------------------------------------------------------------------


class Client(ClientMixin):
    def __init__(self, registered: IssuerClient) -> None:
        self.registered = registered

    @property
    def public(self) -> bool:
        return self.registered.public

    @property
    def name(self) -> str:
        return self.registered.name or self.registered.client_id

    def get_client_id(self) -> str:
        return self.registered.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.registered.redirect_uris
        if len(uris) == 1 and not is_loopback(urlsplit(uris[0]).hostname):
            return uris[0]
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.registered.default_scope
        allowed = self.registered.scope.split()
        return " ".join(dict.fromkeys(s for s in scope.split() if s in allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.registered.redirect_uris:
            return True
        try:
            asked = urlsplit(redirect_uri)
            port = asked.port
        except ValueError:
            return False
        for registered in map(urlsplit, self.registered.redirect_uris):
            # RFC 8252 section 7.3: a native app listens on whatever loopback port it gets.
            if (
                is_loopback(registered.hostname)
                and registered.port is None
                and port is not None
                and (asked.scheme, asked.hostname, asked.path, asked.query, asked.fragment)
                == (registered.scheme, registered.hostname, registered.path, registered.query, "")
            ):
                return True
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.registered.secret
        return secret is not None and secrets.compare_digest(secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.public else method in SECRET_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and AUTHORIZATION_CODE in self.registered.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.registered.grant_types


# --- tokens ----------------------------------------------------------------------------------


class AccessTokens(JWTBearerTokenGenerator):
    """RFC 9068 access tokens (typ at+jwt): iss, sub, aud, client_id, scope, iat,
    exp, jti; for a user, `auth_time` (when they signed in) and `amr`. A service's
    `sub` is its principal."""

    def __init__(self, settings: IssuerSettings, key: IssuerKey) -> None:
        super().__init__(
            settings.issuer,
            alg=ALGORITHM,
            refresh_token_generator=lambda **_: generate_token(48),
            expires_generator=int(settings.token_lifetime.total_seconds()),
        )
        self.settings, self.key = settings, key

    def get_jwks(self) -> Any:
        return self.key.key_set()

    def get_audiences(self, client: Client, user: SignedIn | None, scope: str) -> str:
        return self.settings.audience

    def get_auth_time(self, user: SignedIn | None) -> int | None:
        return user.auth_time if user else None

    def get_amr(self, user: SignedIn | None) -> list[str] | None:
        return list(user.amr) if user else None

    def get_extra_claims(self, client: Client, grant_type: str, user: SignedIn | None, scope: str) -> dict[str, Any]:
        return {"sub": client.registered.principal_id} if user is None else {}


class IdTokenClaims:
    """What every ID token says, whichever grant issued it: signed with the issuer's
    key, for the client, and `auth_time` and `amr` of the sign-in itself (a refresh
    does not sign anyone in again)."""

    settings: IssuerSettings
    key: IssuerKey

    def resolve_client_private_key(self, client: Client) -> Any:
        return self.key.key

    def get_client_algorithm(self, client: Client) -> str:
        return ALGORITHM

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ALGORITHM, "kid": self.key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        lifetime = int(self.settings.token_lifetime.total_seconds())
        return {"iss": self.settings.issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + lifetime}

    def get_compatible_claims(self, request: OAuth2Request) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_compatible_claims(request)  # type: ignore[misc]
        user: SignedIn = request.user
        claims["auth_time"] = user.auth_time
        claims["amr"] = list(user.amr)
        return claims

    def generate_user_info(self, user: SignedIn, scope: str) -> UserInfo:
        return user_info(user, scope)


def user_info(user: SignedIn, scope: str) -> UserInfo:
    claims = {"sub": user.principal_id, "name": user.name, "email": user.email}
    return UserInfo({k: v for k, v in claims.items() if v}).filter(scope)


class CodeIdTokens(IdTokenClaims, OpenIDCode):
    def __init__(self, settings: IssuerSettings, key: IssuerKey, state: IssuerState) -> None:
        super().__init__(require_nonce=False)
        self.settings, self.key, self.state = settings, key, state

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return self.state.nonce_seen(request.payload.client_id, nonce)


class GrantIdTokens(IdTokenClaims, OpenIDToken):
    """ID tokens for the device and refresh grants, when the scope has openid."""

    def __init__(self, settings: IssuerSettings, key: IssuerKey) -> None:
        self.settings, self.key = settings, key


# --- grants ----------------------------------------------------------------------------------


class PkceS256(CodeChallenge):
    """RFC 7636 with S256 only; a public client must use it."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.public and not challenge:
            raise InvalidRequestError("A public client must send a code_challenge (PKCE, method S256).")
        if (challenge or method) and method != "S256":
            raise InvalidRequestError("The code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    server: IssuerServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.state.add_code(
            CodeRecord(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                user=request.user,
                expires_at=time.time() + self.server.settings.code_lifetime.total_seconds(),
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        return self.server.state.take_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        pass  # spent when it was looked up

    def authenticate_user(self, authorization_code: CodeRecord) -> SignedIn:
        return authorization_code.user


class DeviceGrant(DeviceCodeGrant):
    server: IssuerServer

    def query_device_credential(self, device_code: str) -> DeviceRecord:
        record = self.server.state.device(device_code)
        if record is None:
            raise InvalidGrantError("The device_code is unknown or was used already.")
        return record

    def query_user_grant(self, user_code: str) -> tuple[SignedIn | None, bool] | None:
        record = self.server.state.device_by_user_code(user_code)
        if record is None or record.is_expired():
            return None
        if record.denied:
            return None, False
        return (record.user, True) if record.user else None

    def should_slow_down(self, credential: DeviceRecord) -> bool:
        now = time.time()
        too_soon = credential.last_poll is not None and now - credential.last_poll < credential.interval
        credential.last_poll = now
        if too_soon:
            credential.interval += SLOW_DOWN_STEP
        return too_soon

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        response: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_token_response()
        self.server.state.finish_device(self.request.credential)
        return response


class RefreshGrant(RefreshTokenGrant):
    """Refresh tokens rotate: each use returns a new one and spends the old one."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: IssuerServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        return self.server.state.refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: RefreshRecord) -> SignedIn:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        self.server.state.spend_refresh(refresh_token)


class ServiceGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH_METHODS


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    server: IssuerServer

    def __init__(self, server: IssuerServer) -> None:
        super().__init__(server)
        self.EXPIRES_IN = int(server.settings.device_code_lifetime.total_seconds())
        self.INTERVAL = int(server.settings.device_poll_interval.total_seconds())

    def get_verification_uri(self) -> str:
        return self.server.settings.url("/device")

    def create_endpoint_response(self, request: OAuth2Request) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE):
            raise UnauthorizedClientError(f"The client is not authorized to use 'grant_type={DEVICE_CODE}'")
        response: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_endpoint_response(request)
        return response

    def save_device_credential(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        client = self.server.query_client(client_id)
        assert client is not None  # authenticated just before
        self.server.state.add_device(
            DeviceRecord(
                device_code=data["device_code"],
                user_code=data["user_code"],
                client_id=client_id,
                scope=client.get_allowed_scope(scope),
                expires_at=time.time() + data["expires_in"],
                interval=float(data["interval"]),
            )
        )


# --- the server ------------------------------------------------------------------------------


class IssuerServer(AuthorizationServer):
    def __init__(self, settings: IssuerSettings, key: IssuerKey, state: IssuerState) -> None:
        client_scopes = [s for c in settings.clients for s in c.scope.split()]
        super().__init__(scopes_supported=list(dict.fromkeys([*SCOPES, *client_scopes])))
        self.settings, self.key, self.state = settings, key, state
        self.clients = {c.client_id: Client(c) for c in settings.clients}
        self.register_token_generator("default", AccessTokens(settings, key))
        self.register_grant(CodeGrant, [PkceS256(required=True), CodeIdTokens(settings, key, state)])
        self.register_grant(DeviceGrant, [GrantIdTokens(settings, key)])
        self.register_grant(RefreshGrant, [GrantIdTokens(settings, key)])
        self.register_grant(ServiceGrant)
        self.register_endpoint(DeviceEndpoint(self))

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Only refresh tokens are kept; access tokens are self-contained JWTs."""
        refresh = token.get("refresh_token")
        user: SignedIn | None = request.user
        if not refresh or user is None:
            return
        if request.refresh_token is not None:  # a rotation keeps the session's scope and lineage
            family, scope = request.refresh_token.family, request.refresh_token.scope
        elif request.authorization_code is not None:
            family, scope = request.authorization_code.code, token.get("scope", "")
        else:
            family, scope = request.credential.device_code, token.get("scope", "")
        self.state.add_refresh(
            RefreshRecord(
                token=refresh,
                client_id=request.client.get_client_id(),
                scope=scope,
                user=user,
                expires_at=user.auth_time + self.settings.session_lifetime.total_seconds(),
                family=family,
            )
        )

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("the issuer's handlers pass a BufferedRequest, whose body was read already")

    def create_json_request(self, request: Any) -> JsonRequest:
        if isinstance(request, JsonRequest):
            return request
        raise TypeError("the issuer's handlers pass a BufferedJsonRequest, whose body was read already")

    def handle_response(self, status: int, body: Any, headers: Sequence[tuple[str, str]]) -> Response:
        return to_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # Flask's blinker signals; nothing listens here
