"""Around every request: its id (Graph's `request-id` header, in every log line),
the caller's `client-request-id` echoed, and one access log line."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pim.runtime.logging import get_logger

log = get_logger("pim.api.access")
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        headers = dict(scope.get("headers") or [])
        client_request_id = headers.get(b"client-request-id", b"").decode("latin-1")
        if CLIENT_REQUEST_ID.fullmatch(client_request_id):
            state["client_request_id"] = client_request_id
        started = time.monotonic()
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"request-id", request_id.encode()), (b"x-content-type-options", b"nosniff")]
                if "client_request_id" in state:
                    extra.append((b"client-request-id", state["client_request_id"].encode()))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_ids)
            finally:
                log.info(
                    "api request",
                    method=scope.get("method"),
                    path=scope.get("path"),  # never the query string: it may carry a filter's values
                    status=status,
                    principal_id=state.get("principal_id"),
                    ms=round((time.monotonic() - started) * 1000, 1),
                )


class HostAllowList:
    """Answers only to the Host names it is configured with (a DNS rebinding page
    cannot reach a local API under its own name). `*.example.com` matches subdomains."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.exact = {host.lower() for host in allowed if not host.startswith("*.")}
        self.suffixes = tuple(host[1:].lower() for host in allowed if host.startswith("*."))
        self.any = "*" in self.exact

    def allows(self, host_header: str) -> bool:
        host = host_header.lower()
        host = host.rsplit(":", 1)[0] if not host.endswith("]") and host.count(":") == 1 else host
        host = host.split("]:")[0] + "]" if host.startswith("[") and "]:" in host else host
        return self.any or host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if not self.allows(headers.get(b"host", b"").decode("latin-1")):
                import json

                body = json.dumps({"error": {"code": "BadRequest", "message": "this host name is not served here"}}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
