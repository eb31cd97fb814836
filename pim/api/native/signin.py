"""`GET /api/auth/config`: where a client signs in to get this API's tokens. The
command line's `pim login` starts here (pim/cli/login.py): it learns the issuer,
then finds the device authorization endpoint in the issuer's own discovery document.

Nothing here is a secret (it is what the issuer publishes, and the id of a public
client), so it needs no token: a client asks it before it has one."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pim.api.auth import services
from pim.api.services import ApiServices

router = APIRouter(prefix="/api/auth", tags=["sign-in"])


class AuthConfig(BaseModel):
    issuer: str = Field(description="the OIDC issuer whose access tokens this API accepts")
    client_id: str = Field(description="the public client the command line signs in as (device flow)")
    audience: str | None = Field(default=None, description="the `aud` the tokens must carry")
    scope: str | None = Field(default=None, description="what to ask the issuer for, when not the CLI's default")


@router.get(
    "/config",
    response_model=AuthConfig,
    summary="Where to sign in (no token needed)",
    openapi_extra={"security": []},  # the one operation that needs no bearer token
)
async def auth_config(api: ApiServices = Depends(services)) -> AuthConfig:
    config = api.verifier.config
    return AuthConfig(
        issuer=config.issuer,
        client_id=api.settings.api_cli_client_id,
        audience=config.audiences[0] if config.audiences else None,
        scope=api.settings.api_cli_scope,
    )
