"""The portal as an OpenID Connect client of the issuer (PIM_OIDC_ISSUER): the
authorization-code flow with PKCE (S256), and refresh tokens.

authlib gives the protocol's pieces (the code verifier and its challenge, random
state and nonce, the authorization URL); httpx talks to the issuer, as the rest
of the code base does. The issuer's endpoints come from its discovery document.

Refresh tokens rotate, and an issuer may end the whole sign-in when one is used
twice: two requests of the same session that refresh at once (a page and its
live fragment) share one refresh here (one per token, answers kept briefly)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from pim.runtime.http import http_client
from pim.runtime.settings import PimSettings

DEFAULT_SCOPE = "openid profile offline_access"
DISCOVERY_TTL = 300.0
SHARED_REFRESH_TTL = 30.0  # seconds a refresh's answer serves the same old token again
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class SignInFailed(Exception):
    """The issuer refused, or could not be reached; the message is for the person."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: float  # seconds since the epoch
    id_claims: dict[str, Any]  # the ID token's claims (the name shown), when there is one
    claims: dict[str, Any]  # the access token's (auth_time, amr, acr), when it is a JWT


@dataclass(frozen=True)
class Pending:
    """What the session keeps between the redirect to the issuer and its callback."""

    state: str
    verifier: str
    nonce: str
    next: str
    redirect_uri: str

    def as_dict(self) -> dict[str, str]:
        return dict(state=self.state, verifier=self.verifier, nonce=self.nonce, next=self.next, redirect_uri=self.redirect_uri)

    @classmethod
    def from_dict(cls, data: Any) -> Pending | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: str(data[k]) for k in ("state", "verifier", "nonce", "next", "redirect_uri")})
        except KeyError:
            return None


def unverified_claims(jwt: str | None) -> dict[str, Any]:
    """A JWT's payload, unchecked: only for what the page shows or asks (the API checks
    the access token on every call; the ID token came straight from the issuer)."""
    if not jwt or jwt.count(".") != 2:
        return {}
    payload = jwt.split(".")[1]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class PortalOidc:
    settings: PimSettings
    _discovery: tuple[float, dict[str, Any]] | None = None
    _refreshing: dict[str, asyncio.Future[Tokens]] = field(default_factory=dict)
    _refreshed: dict[str, tuple[float, Tokens]] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        if not self.settings.oidc_issuer:
            raise SignInFailed("the portal has no issuer to sign in with (PIM_OIDC_ISSUER)")
        return self.settings.oidc_issuer.rstrip("/")

    async def provider(self) -> dict[str, Any]:
        """The issuer's discovery document, kept for a few minutes."""
        if self._discovery is not None and time.monotonic() - self._discovery[0] < DISCOVERY_TTL:
            return self._discovery[1]
        document = await self._get(f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(document.get("authorization_endpoint"), str) or not isinstance(document.get("token_endpoint"), str):
            raise SignInFailed("the issuer's discovery document names no authorization or token endpoint")
        self._discovery = (time.monotonic(), document)
        return document

    async def start(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """Where to send the browser, and what to keep until it comes back."""
        provider = await self.provider()
        pending = Pending(generate_token(32), generate_token(64), generate_token(32), next_path, redirect_uri)
        url = add_params_to_uri(
            provider["authorization_endpoint"],
            [
                ("response_type", "code"),
                ("client_id", self.settings.portal_client_id),
                ("redirect_uri", redirect_uri),
                ("scope", self.settings.portal_scope or DEFAULT_SCOPE),
                ("state", pending.state),
                ("nonce", pending.nonce),
                ("code_challenge", create_s256_code_challenge(pending.verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return url, pending

    async def exchange(self, code: str, pending: Pending) -> Tokens:
        """The code for tokens (with the PKCE verifier); the ID token's nonce checked."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
        }
        tokens = await self._token(form)
        if tokens.id_claims and tokens.id_claims.get("nonce") != pending.nonce:
            raise SignInFailed("the issuer's answer does not belong to this sign-in (nonce)")
        return tokens

    async def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a refresh token; concurrent refreshes of one token share one call."""
        now = time.monotonic()
        self._refreshed = {k: v for k, v in self._refreshed.items() if now - v[0] < SHARED_REFRESH_TTL}
        if refresh_token in self._refreshed:
            return self._refreshed[refresh_token][1]
        if refresh_token in self._refreshing:
            return await asyncio.shield(self._refreshing[refresh_token])
        future: asyncio.Future[Tokens] = asyncio.get_running_loop().create_future()
        self._refreshing[refresh_token] = future
        try:
            tokens = await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
            self._refreshed[refresh_token] = (time.monotonic(), tokens)
            future.set_result(tokens)
            return tokens
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._refreshing[refresh_token]

    async def _token(self, form: dict[str, str]) -> Tokens:
        provider = await self.provider()
        auth: tuple[str, str] | None = None
        if self.settings.portal_client_secret is not None:
            auth = (self.settings.portal_client_id, self.settings.portal_client_secret.get_secret_value())
        else:
            form = {**form, "client_id": self.settings.portal_client_id}
        try:
            async with http_client(timeout=TIMEOUT, follow_redirects=False) as http:
                response = await http.post(provider["token_endpoint"], data=form, auth=auth)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            raise SignInFailed(f"the issuer cannot be reached ({type(error).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            reason = answer.get("error", f"HTTP {response.status_code}") if isinstance(answer, dict) else response.status_code
            raise SignInFailed(f"the issuer refused the sign-in ({reason})")
        expires_in = answer.get("expires_in")
        claims = unverified_claims(answer["access_token"])
        expires_at = float(claims["exp"]) if isinstance(claims.get("exp"), (int, float)) else time.time() + 300.0
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
            expires_at = min(expires_at, time.time() + float(expires_in))
        refresh = answer.get("refresh_token")
        return Tokens(
            access_token=answer["access_token"],
            refresh_token=refresh if isinstance(refresh, str) else form.get("refresh_token"),
            expires_at=expires_at,
            id_claims=unverified_claims(answer.get("id_token")),
            claims=claims,
        )

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with http_client(timeout=TIMEOUT, follow_redirects=False) as http:
                response = await http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise SignInFailed(f"the issuer cannot be reached ({type(error).__name__})") from None
        if not isinstance(document, dict):
            raise SignInFailed("the issuer's discovery document is not a JSON object")
        return document
