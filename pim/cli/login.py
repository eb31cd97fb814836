"""`pim login`, `pim logout`, `pim auth token`: signing in to the HTTP API named by
PIM_API_URL, for the command line's API mode (pim/cli/remote.py).

`pim login` is the OAuth 2.0 device authorization grant (RFC 8628) against the
issuer the API names (`GET /api/auth/config`), as the API's public client
(`pim-cli`): it prints where to go and which code to enter, and waits while you
sign in there. On `pim dev`'s development issuer, `--user U --code C` signs in
without a browser. The tokens go to the token file (pim/cli/tokens.py), and the
other commands renew them with the refresh token when they expire."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

import httpx
import typer

from pim.cli import remote, tokens
from pim.cli.common import async_command
from pim.cli.errors import CliError
from pim.runtime.http import http_client

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "openid profile offline_access"  # offline_access: a refresh token, so that a session outlives its first token
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
SLOW_DOWN = 5.0  # RFC 8628 section 3.5: each slow_down adds five seconds

auth_app = typer.Typer(help="The token of `pim login`, for curl and SDKs.", no_args_is_help=True)


@async_command
async def login(
    user: Optional[str] = typer.Option(None, "--user", help="pim dev's development issuer only: sign in as USER, no browser"),
    code: Optional[str] = typer.Option(None, "--code", help="USER's current TOTP code (with --user)"),
) -> None:
    """Sign in to the HTTP API (PIM_API_URL) with the OIDC device flow; the other commands then act as you."""
    api = remote.require_api_url("pim login")
    if (user is None) != (code is None):
        raise CliError("give --user and --code together (pim dev's development issuer), or neither", 2)
    if code is not None and not (len(code) == 6 and code.isascii() and code.isdigit()):
        raise CliError("--code: a TOTP code is 6 digits", 2)
    async with http_client(timeout=TIMEOUT, follow_redirects=False) as http:
        config = await get_json(http, f"{api}/api/auth/config", "the API's sign-in settings")
        issuer, client_id = str(config["issuer"]).rstrip("/"), str(config["client_id"])
        provider = await get_json(http, f"{issuer}/.well-known/openid-configuration", "the issuer's discovery document")
        device = await device_authorization(http, provider, client_id, issuer, str(config.get("scope") or SCOPE))
        if user is not None and code is not None:
            from pim.cli.device_page import sign_in_on_device_page

            await sign_in_on_device_page(http, str(device["verification_uri"]), str(device["user_code"]), user, code)
        else:
            show_where_to_sign_in(device)
        answer = await poll_for_tokens(http, str(provider["token_endpoint"]), client_id, device)
        session = tokens.session_from(answer, token_endpoint=str(provider["token_endpoint"]), client_id=client_id, issuer=issuer)
        me = remote.answer(await remote.send(http, "GET", f"{api}/api/me", session.access_token), api)
    with tokens.locked():
        tokens.save(api, session)
    typer.echo(f"signed in to {api} as {me['principal_id']}")


async def get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.TransportError:
        raise CliError(f"cannot reach {remote.origin(url)} for {what} (is `pim dev` or `pim api` running?)") from None
    try:
        found = response.json() if response.status_code == 200 else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise CliError(f"{what} could not be read from {url} (HTTP {response.status_code})")
    return found


async def device_authorization(
    http: httpx.AsyncClient, provider: dict[str, Any], client_id: str, issuer: str, scope: str
) -> dict[str, Any]:
    endpoint = provider.get("device_authorization_endpoint")
    if not isinstance(endpoint, str):
        raise CliError(f"the issuer {issuer} offers no device sign-in (no device_authorization_endpoint)")
    response = await http.post(endpoint, data={"client_id": client_id, "scope": scope}, headers={"Accept": "application/json"})
    device = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or not all(isinstance(device.get(k), str) for k in ("device_code", "user_code")):
        raise CliError(f"the issuer {issuer} refused the device sign-in: {oauth_error(device, response)}")
    return device


def show_where_to_sign_in(device: dict[str, Any]) -> None:
    where = device.get("verification_uri_complete") or device.get("verification_uri")
    typer.echo(f"To sign in, open {where}", err=True)
    typer.echo(f"and enter the code {device['user_code']} (waiting for you...)", err=True)


async def poll_for_tokens(http: httpx.AsyncClient, endpoint: str, client_id: str, device: dict[str, Any]) -> dict[str, Any]:
    """The token endpoint asked every `interval` seconds until the sign-in is done,
    denied, or expired (RFC 8628 section 3.4)."""
    interval = float(device.get("interval") or 5)
    deadline = time.monotonic() + float(device.get("expires_in") or 600)
    data = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": client_id}
    while True:
        response = await http.post(endpoint, data=data, headers={"Accept": "application/json"})
        answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code == 200:
            return dict(answer)
        error = answer.get("error")
        if error == "slow_down":
            interval += SLOW_DOWN
        elif error != "authorization_pending":
            messages = {
                "access_denied": "the sign-in was denied",
                "expired_token": "the code expired before the sign-in: run `pim login` again",
            }
            raise CliError(messages.get(str(error)) or f"the issuer refused the sign-in: {oauth_error(answer, response)}")
        if time.monotonic() + interval > deadline:
            raise CliError("the code expired before the sign-in: run `pim login` again")
        await asyncio.sleep(interval)


def oauth_error(answer: dict[str, Any], response: httpx.Response) -> str:
    error, description = answer.get("error"), answer.get("error_description")
    if not error:
        return f"HTTP {response.status_code}"
    return f"{error}" + (f" ({description})" if description else "")


@async_command
async def logout() -> None:
    """Forget the tokens of `pim login` for PIM_API_URL."""
    api = remote.require_api_url("pim logout")
    with tokens.locked():
        forgotten = tokens.forget(api)
    typer.echo(f"signed out of {api}" if forgotten else f"not signed in to {api}")


@auth_app.command("token")
@async_command
async def token() -> None:
    """Print the current access token (renewed first when it has expired), for curl and SDKs."""
    api = remote.require_api_url("pim auth token")
    async with http_client(timeout=TIMEOUT, follow_redirects=False) as http:
        session = await remote.current_session(http, api)
    typer.echo(session.access_token)
