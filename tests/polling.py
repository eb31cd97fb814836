"""Waiting, in tests on the real-time dev server, for a request to reach a state."""

from __future__ import annotations

import asyncio

from pim.domain.models import State
from pim.domain.status import ActivationStatus


async def settled(pim, request_id: str, state: State, timeout: float = 15) -> ActivationStatus:
    """The request's status once it shows `state`, polled every 100 ms; fails the
    test with the state it stayed in when `timeout` seconds pass first."""
    status = None
    for _ in range(int(timeout / 0.1)):
        status = await pim.status(request_id)
        if status.state == state:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{request_id} stayed {status.state if status else None}, expected {state}")
