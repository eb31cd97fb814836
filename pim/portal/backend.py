"""How pages call the API: as a client with the signed-in person's bearer token,
in-process (httpx's ASGI transport to the very app that serves the page), so that
the API alone authorizes, rate-limits and refuses, exactly as for any caller.

    api = backend(request, viewer)
    mine = await api.get("/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"
                          "/filterByCurrentUser(on='principal')")
    try:
        await api.post("/api/requests", json={...})
    except ApiError as error:
        errors = error.by_field({"duration": "duration", "justification": "justification"})

Calls go out under the Host the page was asked for (it passed the API's allow-list)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request

if TYPE_CHECKING:
    from pim.portal.pages import Viewer

TIMEOUT = httpx.Timeout(60.0)  # a request's POST waits for its verdict (PIM_API_SETTLE_TIMEOUT)


class SignInAgain(Exception):
    """The API no longer accepts the session's token (401): the person signs in again."""


@dataclass
class ApiError(Exception):
    """An answer of the API other than 2xx, read from Graph's error envelope."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    @property
    def codes(self) -> set[str]:
        return {str(d.get("code")) for d in self.details if d.get("code")} | {self.code}

    def by_field(self, targets: dict[str, str]) -> dict[str, str]:
        """The refusal's messages by form field: `targets` maps the API's names of fields
        (a detail's `target`, or the head of its message, `duration: ...`) to the form's.
        What names no field of the form goes under "" (shown above the form)."""
        out: dict[str, list[str]] = {}
        for detail in self.details or [{"message": self.message}]:
            message = str(detail.get("message") or self.message)
            form_field, text = _field_of(message, detail.get("target"), targets)
            out.setdefault(form_field, []).append(text)
        return {name: "; ".join(messages) for name, messages in out.items()}


def _field_of(message: str, target: Any, targets: dict[str, str]) -> tuple[str, str]:
    """The form field a message is about, and what it says of it. A message names its
    field at its start (`duration: ...`), or after what refused it (`extend refused:
    justification: ...`); a detail's `target` says it outright."""
    parts = message.split(": ")
    for index, head in enumerate(parts[:-1]):
        named = str(target) if index == 0 and target else head
        for name, form_field in targets.items():
            if named == name or named.startswith(name + ".") or named.startswith(name + "["):
                return form_field, ": ".join(parts[index + 1 :])
    if target:
        for name, form_field in targets.items():
            if str(target) == name or str(target).startswith(name + "."):
                return form_field, message
    return "", message


class Backend:
    def __init__(self, request: Request, token: str) -> None:
        self.request, self.token = request, token

    def _client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.request.app)
        host = self.request.headers.get("host", "localhost")
        return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", timeout=TIMEOUT)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (None for 204); ApiError for a refusal, SignInAgain for a 401."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        request_id = getattr(self.request.state, "request_id", None)
        if request_id:  # the page's request id, in the API's access line of each call it makes
            headers["client-request-id"] = request_id
        async with self._client() as http:
            response = await http.request(method, path, headers=headers, **kwargs)
        if response.status_code == 401:
            raise SignInAgain()
        if response.status_code >= 400:
            raise _error_of(response)
        return response.json() if response.status_code != 204 and response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.call("POST", path, json=json)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.call("PATCH", path, json=json)


def _error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json().get("error", {})
    except (ValueError, AttributeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    details = [d for d in body.get("details", []) if isinstance(d, dict)]
    message = str(body.get("message") or f"the API answered {response.status_code}")
    return ApiError(response.status_code, str(body.get("code") or response.status_code), message, details)


def backend(request: Request, viewer: Viewer) -> Backend:
    return Backend(request, viewer.access_token)
