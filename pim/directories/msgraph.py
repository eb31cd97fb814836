"""A `Directory` on Microsoft Graph v1.0: group members and owners in Entra ID.

Group and principal ids are Entra object ids. The app signs in with the OAuth2
client-credentials flow (httpx directly: msal's client is synchronous). Errors
become what the activity retry needs: `ApplicationError(non_retryable=True)` with
type `directory_group_not_found`, `directory_principal_not_found`,
`directory_forbidden` or `directory_bad_request` for what no retry will fix,
retryable ones (`directory_throttled`, `directory_unavailable`,
`directory_auth_failed`) for the rest. Every operation is idempotent: "already
a member" and "not a member" are successes.

Tested against a local fake of Graph's documented endpoints and error bodies
(tests/directories/graph_fake.py), not against a real tenant."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from temporalio.exceptions import ApplicationError

from pim.directories.interface import GROUP_NOT_FOUND
from pim.domain.models import AccessType
from pim.runtime.http import http_client
from pim.runtime.logging import get_logger

if TYPE_CHECKING:
    from pim.runtime.settings import PimSettings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# The @odata.id of a reference is always Graph's public URL, whatever base URL we talk to.
DIRECTORY_OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"
TOKEN_MARGIN = 300.0  # renew five minutes early: clocks drift and a call takes time
MAX_RETRY_AFTER = 86400.0  # a hostile or broken header must not overflow a timedelta
RETRYABLE_STATUSES = (408, 409, 423, 429, 500, 502, 503, 504)

log = get_logger("pim.directories.msgraph")


class GraphError(Exception):
    """An answer Graph gave that the caller must look at (internal to this module)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _collection(access: AccessType) -> str:
    return "owners" if AccessType(access) is AccessType.owner else "members"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _retry_after(value: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """Graph's documented body: {"error": {"code": ..., "message": ...}}."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", response.reason_phrase or ""


def _already_exists(err: GraphError) -> bool:
    # Documented: 400 Request_BadRequest "One or more added object references already exist ..."
    return err.status == 400 and err.code == "Request_BadRequest" and "already exist" in err.message


def _throttled(err: GraphError) -> bool:
    # A 503 without Retry-After is an outage, not throttling: left to the activity's retries.
    return err.status == 429 or (err.status == 503 and err.retry_after is not None)


def _invalid_id(err: GraphError) -> bool:
    # An id that is not a GUID: 400 Request_BadRequest "Invalid object identifier '...'."
    return err.status == 400 and err.code == "Request_BadRequest" and "invalid object identifier" in err.message.lower()


class GraphDirectory:
    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority: str = "https://login.microsoftonline.com",
        base_url: str = "https://graph.microsoft.com/v1.0",
        timeout: float = 10.0,
        max_throttle_waits: int = 3,
        max_retry_after: float = 60.0,
        throttle_budget: float = 20.0,
        default_retry_after: float = 2.0,
    ) -> None:
        if not (tenant_id and client_id and client_secret):
            raise ValueError("GraphDirectory needs a tenant id, a client id and a client secret")
        self._token_url = f"{authority.rstrip('/')}/{_seg(tenant_id)}/oauth2/v2.0/token"
        self._base = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._max_waits = max_throttle_waits
        self._max_retry_after = max_retry_after
        # Activities time out at 30 s: longer waits are left to Temporal (next_retry_delay).
        self._throttle_budget = throttle_budget
        self._default_retry_after = default_retry_after
        self._http = http_client(timeout=timeout, follow_redirects=False)
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic()
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: PimSettings) -> GraphDirectory:
        tenant_id, client_id, secret = settings.graph_tenant_id, settings.graph_client_id, settings.graph_client_secret
        if not (tenant_id and client_id and secret):
            given = {"graph_tenant_id": tenant_id, "graph_client_id": client_id, "graph_client_secret": secret}
            missing = [name for name, value in given.items() if not value]
            raise ValueError("Microsoft Graph directory: set " + ", ".join(f"PIM_{m.upper()}" for m in missing))
        return cls(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=secret.get_secret_value(),
            authority=settings.graph_authority,
            base_url=settings.graph_base_url,
        )

    def __repr__(self) -> str:  # never the secret, never a token
        return f"GraphDirectory(base_url={self._base!r}, client_id={self._client_id!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GraphDirectory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # The Directory protocol.

    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        collection = _collection(access)
        try:
            await self._call(
                "POST", f"/groups/{_seg(group_id)}/{collection}/$ref", json={"@odata.id": DIRECTORY_OBJECTS + _seg(principal_id)}
            )
        except GraphError as err:
            if _already_exists(err):
                log.info("graph_add_already_present", group_id=group_id, access=collection, principal_id=principal_id)
                return
            if err.status == 404 or _invalid_id(err):
                # The same answer for a missing group and a missing principal: ask about the group.
                await self._require_group(group_id)
                raise self._permanent(
                    "directory_principal_not_found", f"principal {principal_id!r} not found in the directory", err
                ) from None
            raise self._translate(err) from None
        log.info("graph_added", group_id=group_id, access=collection, principal_id=principal_id)

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        collection = _collection(access)
        try:
            await self._call("DELETE", f"/groups/{_seg(group_id)}/{collection}/{_seg(principal_id)}/$ref")
        except GraphError as err:
            if err.status == 404 or _invalid_id(err):
                # "Not a member" is success, but only if the group itself is there.
                await self._require_group(group_id)
                log.info("graph_remove_already_absent", group_id=group_id, access=collection, principal_id=principal_id)
                return
            raise self._translate(err) from None
        log.info("graph_removed", group_id=group_id, access=collection, principal_id=principal_id)

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        return principal_id in await self.holders(group_id, access)

    async def holders(self, group_id: str, access: AccessType) -> set[str]:
        url: str | None = f"{self._base}/groups/{_seg(group_id)}/{_collection(access)}?$select=id"
        found: set[str] = set()
        while url:
            try:
                page = (await self._call("GET", url)).json()
            except GraphError as err:
                if err.status == 404 or _invalid_id(err):
                    raise self._group_not_found(group_id, err) from None
                raise self._translate(err) from None
            except ValueError:
                page = None
            if not isinstance(page, dict):
                raise ApplicationError("Microsoft Graph answered a page that is not a JSON object", type="directory_unavailable")
            found.update(str(item["id"]) for item in page.get("value", []) if item.get("id"))
            url = page.get("@odata.nextLink")
            if url and not self._same_origin(url):
                # The token goes only where the base URL points.
                raise ApplicationError(
                    f"Microsoft Graph paged to another host: {urlsplit(url).netloc}",
                    type="directory_bad_request",
                    non_retryable=True,
                )
        return found

    # Errors.

    async def _require_group(self, group_id: str) -> None:
        try:
            await self._call("GET", f"/groups/{_seg(group_id)}?$select=id")
        except GraphError as err:
            if err.status == 404 or _invalid_id(err):
                raise self._group_not_found(group_id, err) from None
            raise self._translate(err) from None

    def _group_not_found(self, group_id: str, err: GraphError) -> ApplicationError:
        return self._permanent(GROUP_NOT_FOUND, f"group {group_id!r} not found in the directory", err)

    @staticmethod
    def _permanent(kind: str, text: str, err: GraphError) -> ApplicationError:
        return ApplicationError(f"{text} (Graph {err.status} {err.code}: {err.message})", type=kind, non_retryable=True)

    def _translate(self, err: GraphError) -> ApplicationError:
        detail = f"Graph {err.status} {err.code}: {err.message}"
        if err.status == 403:
            return ApplicationError(f"the app may not do this ({detail})", type="directory_forbidden", non_retryable=True)
        if err.status == 401:
            # Retryable: credentials or consent can be fixed while a revocation waits.
            return ApplicationError(f"Microsoft Graph refused the app's sign-in ({detail})", type="directory_auth_failed")
        if _throttled(err):
            delay = timedelta(seconds=err.retry_after) if err.retry_after else None
            return ApplicationError(
                f"Microsoft Graph is throttling ({detail})", type="directory_throttled", next_retry_delay=delay
            )
        if err.status in RETRYABLE_STATUSES or err.status >= 500:
            return ApplicationError(f"Microsoft Graph failed ({detail})", type="directory_unavailable")
        return ApplicationError(
            f"Microsoft Graph refused the request ({detail})", type="directory_bad_request", non_retryable=True
        )

    # HTTP.

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self._base)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    async def _call(self, method: str, path_or_url: str, json: Any = None) -> httpx.Response:
        """One Graph request, with the token renewed once on a 401 and throttling
        waited out a bounded number of times. Raises GraphError for any answer
        that is not 2xx, ApplicationError (retryable) when Graph cannot be reached."""
        url = path_or_url if path_or_url.startswith("http") else self._base + path_or_url
        renewed = False
        waits = 0
        waited = 0.0
        while True:
            token = await self._access_token()
            try:
                response = await self._http.request(method, url, json=json, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                # The exception's text names the URL only: no header, no body.
                log.warning("graph_unreachable", method=method, error=type(exc).__name__)
                raise ApplicationError(
                    f"Microsoft Graph unreachable: {type(exc).__name__}: {exc}", type="directory_unavailable"
                ) from None
            if response.is_success:
                return response
            code, message = _error_of(response)
            retry_after = _retry_after(response.headers.get("Retry-After"))
            err = GraphError(response.status_code, code, message, retry_after)
            if response.status_code == 401 and code == "InvalidAuthenticationToken" and not renewed:
                renewed = True
                self._forget(token)
                log.info("graph_token_rejected", message=message)
                continue
            if _throttled(err):
                delay = retry_after if retry_after is not None else self._default_retry_after
                if waits < self._max_waits and delay <= self._max_retry_after and waited + delay <= self._throttle_budget:
                    waits += 1
                    waited += delay
                    log.warning("graph_throttled", status=response.status_code, retry_after=delay, wait=waits)
                    await asyncio.sleep(delay)
                    continue
            raise err

    def _forget(self, token: str) -> None:
        if self._token == token:  # another call may already have renewed it
            self._token = None

    async def _access_token(self) -> str:
        if self._token and time.monotonic() < self._token_expires:
            return self._token
        async with self._token_lock:  # concurrent calls share one sign-in
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            started = time.monotonic()
            form = {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._secret,
                "scope": GRAPH_SCOPE,
            }
            try:
                response = await self._http.post(self._token_url, data=form)
            except httpx.HTTPError as exc:
                log.warning("graph_token_unreachable", error=type(exc).__name__)
                raise ApplicationError(
                    f"Microsoft identity platform unreachable: {type(exc).__name__}", type="directory_unavailable"
                ) from None
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not response.is_success or not isinstance(body, dict) or not body.get("access_token"):
                # error and error_codes only: the description may quote the request.
                error = body.get("error", "") if isinstance(body, dict) else ""
                codes = body.get("error_codes", []) if isinstance(body, dict) else []
                log.warning("graph_token_refused", status=response.status_code, error=error, error_codes=codes)
                if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
                    raise ApplicationError(
                        f"Microsoft identity platform failed: {response.status_code}", type="directory_unavailable"
                    )
                raise ApplicationError(
                    f"Microsoft identity platform refused the app's credentials: {response.status_code} {error} {codes}",
                    type="directory_auth_failed",
                )
            lifetime = float(body.get("expires_in") or 0)
            self._token = str(body["access_token"])
            self._token_expires = started + max(0.0, lifetime - min(TOKEN_MARGIN, lifetime / 2))
            log.info("graph_token_acquired", expires_in=lifetime)
            return self._token
