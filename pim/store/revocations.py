"""Revocations first: when many activations expire together, one worker process
revokes them all, and every close's bookkeeping (notifications composed, the
claim released, the audit line) and every workflow task that follows it compete
with the revocations still to come for the same event loop and store. So a
close writes its bookkeeping once no revocation of this process is under way,
or after `BOOKKEEPING_PATIENCE` at most: the access goes first, its record a
moment later, and nothing is skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Long enough for a hundred revocations together (about a second), short enough
# that a revocation stuck on a slow directory only delays others' records a little.
BOOKKEEPING_PATIENCE = 2.0


class RevocationTraffic:
    """How many revocations this process has under way, and who waits for none."""

    def __init__(self) -> None:
        self.under_way_count = 0
        self._waiters: list[asyncio.Future[None]] = []

    @asynccontextmanager
    async def under_way(self) -> AsyncIterator[None]:
        self.under_way_count += 1
        try:
            yield
        finally:
            self.under_way_count -= 1
            if not self.under_way_count:
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def settled(self, patience: float = BOOKKEEPING_PATIENCE) -> None:
        """Return once no revocation is under way, or after `patience` seconds."""
        if not self.under_way_count:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(patience):
                await waiter
        except TimeoutError:
            pass
        finally:
            if waiter in self._waiters:  # a stream of revocations must not grow the list
                self._waiters.remove(waiter)
