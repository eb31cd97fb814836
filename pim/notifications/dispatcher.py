"""The notification dispatcher: delivers what activities queued in the outbox.

It runs beside the Temporal worker, in the same process. A queued notification
wakes it at once; it also polls, for rows other workers queued and for retries.
Each row is one message on one channel, leased while it is being sent (so two
workers never send it together), marked sent, or put back with a growing delay
when the channel fails. Delivery is at least once: a worker that dies between
sending and marking sends again after the lease, which is why every message
carries its key (Message-ID, X-PIM-Delivery) for receivers to recognise it.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, AsyncIterator, Callable, Sequence

from temporalio.common import MetricMeter

from pim.notifications.model import Channel, Notification, PermanentDeliveryError
from pim.runtime import metrics
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.tables import NotificationRow

log = get_logger("pim.notifications.dispatcher")

POLL = timedelta(seconds=5)
# After a wake, wait this long before claiming: a burst of activations (a thousand
# expiring together) is then sent in a few claims rather than one per audit line,
# and its writes stay out of the way of the grants and revocations that queued them.
GATHER = timedelta(milliseconds=500)
LEASE = timedelta(seconds=60)
FLUSH_TIMEOUT = timedelta(seconds=10)
SEND_TIMEOUT = timedelta(seconds=30)
FIRST_RETRY = timedelta(seconds=5)
LAST_RETRY = timedelta(hours=1)
MAX_ATTEMPTS = 20  # about a day of retries at the longest delay
CONCURRENT_SENDS = 10
BATCH = 100  # rows claimed at a time


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s... capped at an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LAST_RETRY)


class NotificationDispatcher:
    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel],
        *,
        poll: timedelta = POLL,
        gather: timedelta = GATHER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        meter: MetricMeter | None = None,
    ) -> None:
        self.store = store
        self.meter = meter or MetricMeter.noop  # the worker's runtime meter: pim_notifications_failed
        self.channels = {channel.name: channel for channel in channels}
        self.poll = poll
        self.gather = gather
        self.clock = clock
        self._wake = asyncio.Event()
        self._sends = asyncio.Semaphore(CONCURRENT_SENDS)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled. A failing store (database restarting) is logged and retried."""
        while True:
            self._wake.clear()
            try:
                # Again at once only after a full batch; otherwise what arrived meanwhile
                # has woken us and is gathered first, not chased a few rows at a time.
                while await self.deliver_due() == BATCH:
                    pass
            except Exception as error:  # noqa: BLE001 - the loop must outlive a store outage
                log.warning("notification dispatch failed; retrying", error=str(error))
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # arrives as the wake does, and the worker's shutdown then waits forever.
                async with asyncio.timeout(self.poll.total_seconds()):
                    await self._wake.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(self.gather.total_seconds())

    async def deliver_due(self, limit: int = BATCH) -> int:
        """Send what is due now; returns how many rows it handled."""
        rows = await self.store.claim_notifications(now=self.clock(), lease=LEASE, limit=limit)
        outcomes = await asyncio.gather(*(self._deliver(row) for row in rows))
        await self.store.notifications_sent([row.id for row, sent in zip(rows, outcomes) if sent], self.clock())
        return len(rows)

    async def _deliver(self, row: NotificationRow) -> bool:
        channel = self.channels.get(row.channel)
        if channel is None:
            await self._failed(row, f"channel {row.channel!r} is not configured on this worker", permanent=True)
            return False
        try:
            notification = Notification.model_validate(row.payload)
            async with self._sends:
                await asyncio.wait_for(channel.send(notification), timeout=SEND_TIMEOUT.total_seconds())
        except PermanentDeliveryError as error:
            await self._failed(row, str(error), permanent=True)
            return False
        except Exception as error:  # noqa: BLE001 - any failure of a channel is retried
            await self._failed(row, f"{type(error).__name__}: {error}", permanent=False)
            return False
        return True

    async def _failed(self, row: NotificationRow, error: str, *, permanent: bool) -> None:
        final = permanent or row.attempts >= MAX_ATTEMPTS
        retry_at = None if final else self.clock() + retry_delay(row.attempts)
        await self.store.notification_failed(row.id, error=error, retry_at=retry_at)
        metrics.notification_failed(self.meter, row.channel, final)
        log.warning(
            "notification not delivered",
            channel=row.channel,
            pim_event=row.event,
            key=row.dedupe_key,
            attempts=row.attempts,
            error=error,
            retry_at=retry_at.isoformat() if retry_at else None,
            gave_up=final,
        )


@asynccontextmanager
async def dispatching(store: Store, channels: Sequence[Channel], **options: Any) -> AsyncIterator[NotificationDispatcher]:
    """Run a dispatcher for the duration of the block; the store wakes it when an
    activity of this process queues a notification."""
    dispatcher = NotificationDispatcher(store, channels, **options)
    store.notifications_queued = dispatcher.wake
    task = asyncio.create_task(dispatcher.run(), name="pim-notification-dispatcher")
    try:
        yield dispatcher
    finally:
        store.notifications_queued = None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        # A worker that stops (a deploy) sends what is due, gathered or not, rather
        # than leave it to the next worker's poll; what fails stays in the outbox.
        try:
            await asyncio.wait_for(dispatcher.deliver_due(), timeout=FLUSH_TIMEOUT.total_seconds())
        except Exception as error:  # noqa: BLE001 - stopping must not fail on a channel or the store
            log.warning("notifications left in the outbox at shutdown", error=f"{type(error).__name__}: {error}")
