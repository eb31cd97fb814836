"""Step-up MFA with the organisation's identity provider: an OIDC ID or access
token (a JWT) as `{"method": "oidc", "token": "..."}`, verified by the admission
activity. Nothing here runs in a workflow.

What a token must be, in this order (the first failure is the verdict):

1. A JWS signed with an asymmetric algorithm (RSA, RSA-PSS, ECDSA, EdDSA). `none`
   and HS* are refused before any key is looked at.
2. From the configured issuer (`PIM_OIDC_ISSUER`).
3. Signed by a key the issuer publishes in its JWKS (`PIM_OIDC_JWKS_URL`, or the
   `jwks_uri` of `{issuer}/.well-known/openid-configuration`). Keys are cached
   (JWKS_TTL); a `kid` that is not in the cache causes one refetch, at most one
   per REFETCH_INTERVAL, which is how key rotation is picked up. The algorithms a
   key may verify come from the key itself (its `kty`, `crv`, `alg`), never from
   the token header: a public key is never used as an HMAC secret.
4. For the configured audience, within `exp` and `nbf` (LEEWAY either side).
5. About the requester: the claim `PIM_OIDC_PRINCIPAL_CLAIM` (default `sub`)
   equals the request's `principal_id`.
6. Multi-factor: the policy's `mfa_auth_context`, when set, is the token's `acr`
   (or one of its `acrs`); otherwise `amr` contains "mfa".
7. Recent: `auth_time` is at most the policy's `mfa_max_auth_age` ago.

The caller then uses the token up (`replay_key`): a token that passes 1 to 5 is
used up even when 6 or 7 refuse it. An identity provider that cannot
be reached raises JwksUnavailable, so the activity retries instead of rejecting.
Violations name `mfa.token` and never contain the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx
import jwt
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from pim.domain.models import Violation
from pim.domain.policy import ActivationSettings
from pim.runtime.http import http_client
from pim.runtime.logging import get_logger
from pim.runtime.settings import PimSettings, load_settings

log = get_logger("pim.identity.oidc")

LEEWAY = 30.0  # seconds of clock skew tolerated on exp, nbf, iat and auth_time
JWKS_TTL = 600.0  # keys are refetched at least this often (seconds)
REFETCH_INTERVAL = 30.0  # an unknown kid refetches at most this often, so junk kids cannot flood the IdP
HTTP_TIMEOUT = 5.0  # well inside the admission activity's 30 s
MAX_DOCUMENT = 1 << 20  # a JWKS or discovery document larger than this is refused

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS: dict[str, tuple[str, ...]] = {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)}
OKP_ALGORITHMS: dict[str, tuple[str, ...]] = {"Ed25519": ("EdDSA",), "Ed448": ("EdDSA",)}
KEY_LOADERS: dict[str, type[Algorithm]] = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
ASYMMETRIC = frozenset(RSA_ALGORITHMS) | {"ES256", "ES384", "ES512", "EdDSA"}
MIN_RSA_BITS = 2048


class JwksUnavailable(RuntimeError):
    """The identity provider's keys could not be fetched: transient, the activity retries."""


def _v(code: str, message: str) -> Violation:
    return Violation(code=code, message=f"mfa.token: {message}")


NOT_CONFIGURED = _v("mfa_not_configured", "the workers have no identity provider configured (PIM_OIDC_ISSUER)")
TOKEN_REPLAYED = _v("mfa_replayed", "this token was already used: sign in again for a new one")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ip_address(host).is_loopback
    except ValueError:
        return False


def _require_https(url: str, name: str) -> str:
    # Keys fetched over plain HTTP could be swapped by anyone on the path; loopback is for tests.
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
        raise ValueError(f"{name}: must be an https:// URL, got {url!r}")
    return url


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str | None = None  # None: discovered from the issuer
    principal_claim: str = "sub"

    def __post_init__(self) -> None:
        _require_https(self.issuer, "PIM_OIDC_ISSUER")
        if self.jwks_url:
            _require_https(self.jwks_url, "PIM_OIDC_JWKS_URL")
        if not self.audiences or not all(self.audiences):
            raise ValueError("PIM_OIDC_AUDIENCE: required with PIM_OIDC_ISSUER")
        if not self.principal_claim:
            raise ValueError("PIM_OIDC_PRINCIPAL_CLAIM: must name a claim")

    @classmethod
    def from_settings(cls, settings: PimSettings) -> "OidcConfig | None":
        if not settings.oidc_issuer:
            return None
        audiences = tuple(a.strip() for a in (settings.oidc_audience or "").split(",") if a.strip())
        return cls(
            issuer=settings.oidc_issuer,
            audiences=audiences,
            jwks_url=settings.oidc_jwks_url or None,
            principal_claim=settings.oidc_principal_claim,
        )


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    key: Any  # a cryptography public key object, never bytes: it cannot be read as an HMAC secret
    algorithms: tuple[str, ...]


def _algorithms_for(jwk: dict) -> tuple[str, ...]:
    """What a published key may verify, from the key alone (the defence against
    algorithm confusion): nothing for symmetric (`oct`) or unknown keys."""
    kty, crv = jwk.get("kty"), jwk["crv"] if isinstance(jwk.get("crv"), str) else ""
    allowed = (
        RSA_ALGORITHMS
        if kty == "RSA"
        else EC_ALGORITHMS.get(crv, ())
        if kty == "EC"
        else OKP_ALGORITHMS.get(crv, ())
        if kty == "OKP"
        else ()
    )
    if "alg" in jwk:  # a key that names its algorithm is pinned to it
        return (jwk["alg"],) if jwk["alg"] in allowed else ()
    return tuple(allowed)


def parse_jwks(document: Any) -> list[SigningKey]:
    """The signature keys of a JWKS; keys that are unusable or not for signatures are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS (no keys list)")
    out = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        algorithms = _algorithms_for(jwk)
        if not algorithms:
            continue
        loader = KEY_LOADERS[jwk["kty"]]
        try:
            key = loader.from_jwk(jwk)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if hasattr(key, "private_bytes"):  # a JWKS that leaked private parts: use only the public half
            key = key.public_key()
        if jwk["kty"] == "RSA" and key.key_size < MIN_RSA_BITS:
            continue
        kid = jwk.get("kid")
        out.append(SigningKey(kid=kid if isinstance(kid, str) else None, key=key, algorithms=algorithms))
    return out


class JwksCache:
    """The issuer's signing keys, fetched over HTTP and kept for JWKS_TTL."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        ttl: float = JWKS_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        timeout: float = HTTP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer, self.jwks_url = issuer.rstrip("/"), jwks_url
        self.ttl, self.refetch_interval, self.timeout, self.clock = ttl, refetch_interval, timeout, clock
        self.keys: list[SigningKey] = []
        self.fetched_at: float | None = None  # last successful fetch
        self.attempted_at: float | None = None  # last fetch, successful or not
        self._lock = asyncio.Lock()  # one fetch at a time; concurrent verifications wait for it

    async def find(self, kid: str | None, alg: str) -> SigningKey | None:
        async with self._lock:
            now = self.clock()
            if self.fetched_at is None or now - self.fetched_at >= self.ttl:
                await self._refresh(now)
            found = self._match(kid, alg)
            if found is None and (self.attempted_at is None or now - self.attempted_at >= self.refetch_interval):
                await self._refresh(now)  # perhaps a key published since the last fetch (rotation)
                found = self._match(kid, alg)
            return found

    def _match(self, kid: str | None, alg: str) -> SigningKey | None:
        if kid is None:  # a token without kid is accepted only when the choice is unambiguous
            candidates = self.keys if len(self.keys) == 1 else []
        else:
            candidates = [k for k in self.keys if k.kid == kid]
        return next((k for k in candidates if alg in k.algorithms), candidates[0] if candidates else None)

    async def _refresh(self, now: float) -> None:
        self.attempted_at = now
        async with http_client(timeout=self.timeout, follow_redirects=False) as http:
            if self.jwks_url is None:
                discovery = await self._get(http, f"{self.issuer}/.well-known/openid-configuration")
                if not isinstance(discovery, dict) or str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                    raise JwksUnavailable("the OIDC discovery document names another issuer")
                uri = discovery.get("jwks_uri")
                if not isinstance(uri, str):
                    raise JwksUnavailable("the OIDC discovery document has no jwks_uri")
                try:
                    self.jwks_url = _require_https(uri, "jwks_uri")
                except ValueError as error:
                    raise JwksUnavailable(str(error)) from None
            document = await self._get(http, self.jwks_url)
        try:
            self.keys = parse_jwks(document)
        except ValueError as error:
            raise JwksUnavailable(f"{self.jwks_url}: {error}") from None
        self.fetched_at = now
        log.info("oidc keys fetched", url=self.jwks_url, keys=len(self.keys))

    async def _get(self, http: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise JwksUnavailable(f"{url}: unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            raise JwksUnavailable(f"{url}: HTTP {response.status_code}")
        if len(response.content) > MAX_DOCUMENT:
            raise JwksUnavailable(f"{url}: document larger than {MAX_DOCUMENT} bytes")
        try:
            return response.json()
        except ValueError:
            raise JwksUnavailable(f"{url}: not JSON") from None


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    # What the caller records as used: a digest of issuer and jti, or of the token.
    # Set for every genuine token of the principal, refused by the policy or not.
    replay_key: str | None = None


def _label(value: Any) -> str:
    """A header value fit for a message: short and plain, or nothing."""
    return f" {value}" if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,16}", value) else ""


class OidcVerifier:
    def __init__(self, config: OidcConfig, keys: JwksCache | None = None) -> None:
        self.config = config
        self.keys = keys or JwksCache(config.issuer, config.jwks_url)

    async def decode(self, token: str) -> dict[str, Any] | Violation:
        """The token's claims when its signature, issuer, audience and lifetime hold;
        otherwise the violation. Raises JwksUnavailable when the keys cannot be fetched.
        (The HTTP API authenticates its callers with this too.)"""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            return _v("mfa_invalid", "not a readable JWT")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            return _v(
                "mfa_invalid",
                f"the signature algorithm{_label(alg)} is not allowed (only RSA, RSA-PSS, ECDSA or EdDSA signatures)",
            )
        # Checked again after the signature; here it spares the IdP a refetch for foreign tokens.
        if unverified.get("iss") != self.config.issuer:
            return _v("mfa_wrong_issuer", f"not issued by {self.config.issuer}")
        kid = header.get("kid")
        key = await self.keys.find(kid if isinstance(kid, str) else None, alg)
        if key is None:
            return _v("mfa_unknown_key", "signed with a key the identity provider does not publish")
        if alg not in key.algorithms:
            return _v("mfa_invalid", f"the signature algorithm{_label(alg)} does not match the key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                audience=list(self.config.audiences),
                issuer=self.config.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return _v("mfa_token_expired", "the token has expired; sign in again")
        except jwt.ImmatureSignatureError:
            return _v("mfa_token_not_yet_valid", "the token is not valid yet (nbf or iat in the future)")
        except jwt.InvalidAudienceError:
            return _v("mfa_wrong_audience", f"not issued for {', '.join(self.config.audiences)}")
        except jwt.InvalidIssuerError:
            return _v("mfa_wrong_issuer", f"not issued by {self.config.issuer}")
        except jwt.MissingRequiredClaimError as error:
            return _v("mfa_invalid", f"the {error.claim} claim is missing")
        except jwt.InvalidSignatureError:
            return _v("mfa_invalid", "the signature does not verify")
        except (jwt.PyJWTError, ValueError, TypeError):
            return _v("mfa_invalid", "the token is malformed")
        return claims

    async def verify(self, token: str, principal_id: str, settings: ActivationSettings) -> Verdict:
        """The verdict on `token` for `principal_id` under `settings`. Raises
        JwksUnavailable when the keys cannot be fetched."""
        claims = await self.decode(token)
        if isinstance(claims, Violation):
            return Verdict([claims])
        jti = claims.get("jti")
        basis = f"jti\0{claims['iss']}\0{jti}" if isinstance(jti, str) and jti else f"token\0{token}"
        replay_key = hashlib.sha256(basis.encode()).hexdigest()
        problem = self._check_claims(claims, principal_id, settings, time.time())
        if problem is not None and problem.code == "mfa_wrong_subject":
            return Verdict([problem])  # someone else's token: not this principal's to use up
        # A genuine token of this principal is used up even when this policy refuses it
        # (not multi-factor enough, too old): it is in the history of a refused request.
        return Verdict([problem] if problem else [], replay_key=replay_key)

    def _check_claims(self, claims: dict, principal_id: str, settings: ActivationSettings, now: float) -> Violation | None:
        claim = self.config.principal_claim
        if claims.get(claim) != principal_id:
            return _v("mfa_wrong_subject", f"its {claim} claim does not name {principal_id}")
        return check_sign_in(claims, settings, now)


def check_sign_in(claims: Mapping[str, Any], settings: ActivationSettings, now: float) -> Violation | None:
    """Whether a sign-in (a token's claims, or what a front end vouches for) was
    multi-factor, or in the policy's authentication context, and recent enough."""
    if settings.mfa_auth_context is not None:
        acrs = claims.get("acrs")
        if claims.get("acr") != settings.mfa_auth_context and not (isinstance(acrs, list) and settings.mfa_auth_context in acrs):
            return _v("mfa_insufficient", f"this policy requires the authentication context {settings.mfa_auth_context!r} (acr)")
    else:
        amr = claims.get("amr")
        if not (isinstance(amr, list) and "mfa" in amr):
            return _v("mfa_insufficient", 'the sign-in was not multi-factor (amr has no "mfa")')
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, bool) or not isinstance(auth_time, (int, float)) or not math.isfinite(auth_time):
        return _v("mfa_stale", "the token has no auth_time claim: ask the identity provider for one (max_age)")
    if auth_time > now + LEEWAY:
        return _v("mfa_invalid", "auth_time is in the future")
    limit = settings.mfa_max_auth_age.total_seconds()
    if now - auth_time > limit + LEEWAY:
        return _v(
            "mfa_stale",
            f"the sign-in is {int((now - auth_time) // 60)} minutes old; this policy "
            f"accepts {int(limit // 60)} at most: sign in again",
        )
    return None


def configured_verifier(settings: PimSettings | None = None) -> OidcVerifier | None:
    """The verifier for PIM_OIDC_*, or None when no issuer is configured."""
    config = OidcConfig.from_settings(settings or load_settings())
    return OidcVerifier(config) if config else None
