"""Who is calling: a bearer token from the company's issuer, and nothing else.

The token is an OAuth 2.0 access token (a JWT) that the OIDC verifier accepts:
signature by a key from the issuer's JWKS, issuer, audience, lifetime
(pim/identity/oidc.py). Its `PIM_OIDC_PRINCIPAL_CLAIM` names the caller, a user or
a service principal of the store; a client-credentials token without that claim
(one whose `sub` is its client, or whose `idtyp` is "app") names its service
principal by `PIM_OIDC_SERVICE_CLAIM`. No header or body field
can name a caller, and every actor the API sends to Temporal is this caller."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pim.api.errors import forbidden, unauthorized
from pim.api.services import ApiServices
from pim.domain import authorization as authz
from pim.domain.models import ID_PATTERN, MfaEvidence, Violation

MAX_TOKEN = 16 * 1024
USER, SERVICE = "user", "service"
# Documented in /openapi.json as the scheme of every operation.
bearer = HTTPBearer(auto_error=False, description="An access token from the company's OIDC issuer")


@dataclass(frozen=True)
class Caller:
    principal_id: str
    kind: str  # user | service
    roles: frozenset[str]
    # How and when the caller signed in (a user's token): evidence of MFA for the request.
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None

    @property
    def is_admin(self) -> bool:
        return bool(self.roles & authz.GROUP_ROLES)

    def sign_in_evidence(self) -> MfaEvidence | None:
        """The sign-in the API vouches for (`{"method": "signin"}`), when the token says
        when it happened; the worker decides whether it was multi-factor and recent."""
        if self.kind != USER or self.auth_time is None:
            return None
        return MfaEvidence(method="signin", auth_time=self.auth_time, amr=list(self.amr) or None, acr=self.acr)


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    api: ApiServices = Depends(services),
) -> Caller:
    """The caller, or 401 (no token, a token the issuer did not sign for us) or 403
    (a genuine token of someone this tenant does not know)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        api.limiter.check(api.anonymous_limit, _client_address(request))
        raise unauthorized("a bearer token is required (Authorization: Bearer <access token>)")
    token = credentials.credentials
    if len(token) > MAX_TOKEN:
        raise unauthorized("the token is too long")
    claims = await api.verifier.decode(token)
    if isinstance(claims, Violation):
        api.limiter.check(api.anonymous_limit, _client_address(request))
        raise unauthorized(_token_problem(claims))
    caller = await _caller_of(api, claims)
    api.limiter.check(api.request_limit, caller.principal_id)
    request.state.principal_id = caller.principal_id  # for the access log
    return caller


async def _caller_of(api: ApiServices, claims: dict[str, Any]) -> Caller:
    config = api.verifier.config
    named = claims.get(config.principal_claim)
    application = _is_application_token(claims, api.settings.oidc_service_claim)
    if named is None and application:
        named = claims.get(api.settings.oidc_service_claim)
    # An application's token names a service principal only: a client whose subject is
    # spelled like a user's id does not become that user.
    kinds = {SERVICE} if application else {USER, SERVICE}
    if not isinstance(named, str) or not re.match(ID_PATTERN, named):
        raise unauthorized(f"the token has no usable {config.principal_claim} claim naming the caller")
    principal = await api.store.principal(named)
    if principal is None or principal.kind not in kinds:
        raise forbidden(f"{named} is not a user or service principal of this tenant", "unknown_principal")
    auth_time = claims.get("auth_time")
    amr = claims.get("amr")
    acr = claims.get("acr")
    return Caller(
        principal_id=named,
        kind=principal.kind,
        roles=frozenset(await api.store.roles_of(named)),
        auth_time=auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None,
        amr=tuple(m for m in amr if isinstance(m, str) and 0 < len(m) <= 32)[:10] if isinstance(amr, list) else (),
        acr=acr if isinstance(acr, str) and 0 < len(acr) <= 256 else None,
    )


def _is_application_token(claims: dict[str, Any], service_claim: str) -> bool:
    """A client-credentials token: its subject is the client itself (RFC 9068), or it
    says it is an application's (Entra's `idtyp`). A user's token never falls back to
    its client's name: a service principal named like the CLI's client must not
    become every user whose token lacks the principal claim."""
    client = claims.get(service_claim)
    return isinstance(client, str) and (claims.get("sub") == client or claims.get("idtyp") == "app")


def _token_problem(violation: Violation) -> str:
    # The verifier names the field it checks for step-up MFA (`mfa.token: ...`); here it is the bearer token.
    _, _, reason = violation.message.partition(": ")
    return f"bearer token: {reason or violation.message}"


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
