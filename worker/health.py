"""The worker's health endpoint (PIM_HEALTH_PORT): GET /healthz answers while
the process runs; GET /readyz answers 200 while the worker polls its task queue
and the store answers, 503 before that and while it drains."""

from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable

from pim.runtime.health import Check

Probe = Callable[[], Awaitable[list[Check]]]


class HealthServer:
    def __init__(self, port: int, probe: Probe) -> None:
        self.port = port
        self.probe = probe
        self.ready = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, host="0.0.0.0", port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1").split()
            path = request_line[1] if len(request_line) > 1 else "/"
            body: dict[str, object]
            if path == "/healthz":
                status, body = 200, {"status": "alive"}
            elif path == "/readyz":
                checks = await self.probe() if self.ready else []
                ok = self.ready and all(c.ok for c in checks)
                status = 200 if ok else 503
                body = {
                    "ready": ok,
                    "worker": "polling" if self.ready else "not polling",
                    "checks": [c.model_dump() for c in checks],
                }
            else:
                status, body = 404, {"error": "try /healthz or /readyz"}
            payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
