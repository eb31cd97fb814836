"""The command line's API mode: with PIM_API_URL set, a user command is one call to
the HTTP API with the token of `pim login` (pim/cli/tokens.py), and prints what
the API answers with the same code as in local mode. It reads no store, no
directory, no Temporal setting and no key: the API holds those, and the actor is
whoever signed in, so `--as` is refused.

An error the API answers (Graph's envelope) becomes the command's one line,
`error: <message>`, exit 1; exit 2 for a 400 that names a field it could not
take (the same code as a malformed argument in local mode)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pim.cli.errors import CliError

# httpx (which loads Rich and Click for its own command line) is imported by the calls:
# every command asks `in_api_mode()`, and in local mode it is never needed.
if TYPE_CHECKING:
    import httpx

    from pim.cli.tokens import Session

# Long enough for the calls that wait: `request --wait` (PIM_API_SETTLE_TIMEOUT on the
# API's side), and cancel or deactivate, which follow the request until it has ended.
TIMEOUT, CONNECT_TIMEOUT = 120.0, 10.0
SIGN_IN = "run `pim login`"


def api_url() -> str | None:
    from pim.runtime.settings import load_settings

    url = load_settings().api_url
    return url.rstrip("/") if url else None


def in_api_mode() -> bool:
    return api_url() is not None


def require_api_url(command: str) -> str:
    url = api_url()
    if url is None:
        raise CliError(f"{command} works with the HTTP API: set PIM_API_URL (e.g. http://localhost:7280, which `pim dev` prints)")
    return url


def acting(as_: str | None, what: str = "--as") -> str | None:
    """The actor a command names: in local mode `--as`, which is required; in API mode
    nobody, since it is whoever signed in, and `--as` is refused."""
    if in_api_mode():
        if as_ is not None:
            raise CliError(f"{what} is refused in API mode (PIM_API_URL): you act as who signed in (`pim login`)", 2)
        return None
    if as_ is None:
        raise CliError(f"{what}: required in local mode (the acting principal); or set PIM_API_URL and `pim login`", 2)
    return as_


def fields(**values: Any) -> dict[str, Any]:
    """A JSON body of the options given: one left out takes the API's default."""
    return {name: value for name, value in values.items() if value is not None}


def path_of(request_id: str) -> str:
    """A request id (`activation/grp-ops/member/alice`) as URL path segments."""
    return quote(request_id, safe="/@")


async def call(method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
    """One call to the API as the signed-in user; its JSON answer (None for 204).
    An access token the API refuses is renewed once, then the call is made again."""
    import httpx

    from pim.runtime.http import http_client

    url = require_api_url("this command")
    query = {key: value for key, value in (params or {}).items() if value is not None}
    async with http_client(timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT), follow_redirects=False) as http:
        session = await current_session(http, url)
        response = await send(http, method, url + path, session.access_token, json=json, params=query)
        if response.status_code == 401 and session.refresh_token:
            session = await current_session(http, url, renew=True)
            response = await send(http, method, url + path, session.access_token, json=json, params=query)
    return answer(response, url)


async def send(
    http: httpx.AsyncClient, method: str, url: str, token: str | None, *, json: Any = None, params: Any = None
) -> httpx.Response:
    import httpx

    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    try:
        return await http.request(method, url, json=json, params=params, headers=headers)
    except httpx.TimeoutException:
        raise CliError(f"the API at {origin(url)} did not answer in time") from None
    except httpx.TransportError:
        raise CliError(f"cannot reach the API at {origin(url)} (is `pim dev` or `pim api` running?)") from None


def origin(url: str) -> str:
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def answer(response: httpx.Response, api: str) -> Any:
    """The JSON of a success; otherwise the API's error as the command's one line."""
    if response.is_success:
        return response.json() if response.content else None
    message, exit_code = error_of(response)
    if response.status_code == 401:
        message = f"not signed in to {api}: {message}; {SIGN_IN}"
    raise CliError(message, exit_code)


def error_of(response: httpx.Response) -> tuple[str, int]:
    """Graph's envelope read: its message, and 2 for a field the API could not take."""
    try:
        error = response.json()["error"]
        message = str(error["message"])
        details = error.get("details") or []
    except (ValueError, KeyError, TypeError):
        return f"the API answered HTTP {response.status_code} ({response.reason_phrase})", 1
    malformed = response.status_code == 400 and any(
        isinstance(d, dict) and d.get("code") == "invalid_value" and d.get("target") for d in details
    )
    return message, 2 if malformed else 1


async def current_session(http: httpx.AsyncClient, api: str, renew: bool = False) -> Session:
    """The stored session for `api`, renewed first when its token has expired (or
    `renew`: the API refused it). Read, renewed and written under the file's lock."""
    from pim.cli import tokens

    with tokens.locked():
        session = tokens.load(api)
        if session is None:
            raise CliError(f"not signed in to {api}: {SIGN_IN}")
        if not (renew or session.expired):
            return session
        if session.refresh_token is None:
            raise CliError(f"the session with {api} has expired: {SIGN_IN}")
        renewed = await refresh(http, session)
        tokens.save(api, renewed)
        return renewed


async def refresh(http: httpx.AsyncClient, session: Session) -> Session:
    """The refresh token grant (RFC 6749 section 6) at the issuer that gave the session."""
    import httpx

    from pim.cli import tokens

    data = {"grant_type": "refresh_token", "refresh_token": session.refresh_token, "client_id": session.client_id}
    try:
        response = await http.post(session.token_endpoint, data=data, headers={"Accept": "application/json"})
    except httpx.TransportError:
        raise CliError(f"cannot reach the issuer at {origin(session.token_endpoint)} to renew the session") from None
    if response.status_code != 200:
        raise CliError(f"the issuer ended the session (it refused to renew it): {SIGN_IN}")
    renewed = tokens.session_from(
        response.json(), token_endpoint=session.token_endpoint, client_id=session.client_id, issuer=session.issuer
    )
    if renewed.refresh_token is None:  # an issuer that does not rotate keeps the old one valid
        renewed.refresh_token = session.refresh_token
    return renewed
