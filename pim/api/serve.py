"""The API on uvicorn: `pim api` runs it as its process's server; `pim dev` runs it
inside its own event loop, beside the worker (`serving`).

The listening socket is bound before anything else starts, so that a port in use
is reported at once, in one line, and no other process can take it meanwhile.
Access lines come from the API's own middleware (with request ids and the
caller), so uvicorn's are off; its other lines go through the process's logging
(PIM_LOG_FORMAT=json writes them as JSON)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn

STARTUP_TIMEOUT = 10.0
GRACE = 5  # seconds a stopping server gives the calls in flight (a request waiting for its verdict)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (OSError when it cannot)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is no conflict
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # callers wait in the backlog until the server accepts (uvicorn's default backlog)
    except OSError:
        sock.close()
        raise
    return sock


def server_config(app: Any) -> uvicorn.Config:
    # log_config None: uvicorn's records go to the root handler that configure_logging set up.
    return uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", server_header=False, timeout_graceful_shutdown=GRACE
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn in an event loop it does not own: the owner handles SIGINT and SIGTERM
    (`pim dev` stops the worker, the API and the Temporal server together)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """`app` served on `sock` in this event loop until the block ends."""
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # the owner says when it is ready
    server = EmbeddedServer(server_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # it failed: raise why
                    raise RuntimeError("the API server stopped before it listened")
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
