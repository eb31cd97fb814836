"""What the multi-process tests share: free ports and the workers' HTTP health endpoint."""

from __future__ import annotations

import asyncio
import socket

from tests.polling import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_status(port: int, path: str) -> int | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 else None
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        writer.close()


async def until_ready(name: str, proc: asyncio.subprocess.Process, port: int, timeout: float) -> None:
    """Wait until the worker process `proc` answers 200 on /readyz (fails at once when it exits first)."""

    async def ready() -> bool:
        if await http_status(port, "/readyz") == 200:
            return True
        if proc.returncode is not None:
            raise AssertionError(f"{name} exited with {proc.returncode} before it was ready")
        return False

    await eventually(ready, what=f"{name} to be ready on port {port}", timeout=timeout, interval=0.2)
