"""A development OpenID Connect issuer, built on authlib's server components, for
the store's users (principals of kind "user"), who sign in with their TOTP code.
`pim dev` serves it so that the demo stays offline, and the tests use it as a
real identity provider on loopback. Its tokens are what `pim/identity/oidc.py`
verifies for step-up MFA.

    app = create_issuer_app(store, IssuerSettings(issuer="http://127.0.0.1:7280/dev-issuer", audience="pim"))

What it serves (app.py): discovery, JWKS, the code flow with PKCE, the device
flow (RFC 8628), refresh tokens, client credentials for services, userinfo.
Access tokens are RFC 9068 JWTs (RS256): `sub` the principal, `aud` the
audience, `client_id`, `scope`; for a user, `amr` ["otp", "mfa"] and `auth_time`,
the moment they signed in (a refresh keeps it). State (codes, device codes,
refresh tokens) lives in memory: one process. Not for production: it is the
store's TOTP codes behind a web form."""

from pim.identity.issuer.app import create_issuer_app
from pim.identity.issuer.config import (
    DEV_ISSUER_KEY_FILE,
    PIM_CLI,
    PIM_PORTAL,
    IssuerClient,
    IssuerSettings,
    pim_cli_client,
    pim_portal_client,
)

__all__ = [
    "DEV_ISSUER_KEY_FILE",
    "PIM_CLI",
    "PIM_PORTAL",
    "IssuerClient",
    "IssuerSettings",
    "create_issuer_app",
    "pim_cli_client",
    "pim_portal_client",
]
