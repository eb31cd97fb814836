"""The notification outbox and its dispatcher, on both stores: a notification is
queued with its audit line or not at all, delivered once per channel, retried
with a growing delay when a channel fails, given up on a permanent refusal,
and never sent by two dispatchers at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pim.notifications.channels.log import LogChannel
from pim.notifications.dispatcher import NotificationDispatcher, dispatching, retry_delay
from pim.notifications.model import Notification, PermanentDeliveryError, Recipient
from tests.polling import eventually

AT = datetime(2026, 11, 29, 9, tzinfo=UTC)


def note(key: str, event: str = "activation_active") -> Notification:
    return Notification(
        key=key,
        event=event,
        at=AT,
        subject=f"subject {key}",
        request_id=f"req-{key}",
        recipients=[Recipient(principal_id="alice", role="requestor")],
    )


async def audit_with(store, key: str, channels=("log",), notes=None) -> None:
    await store.append_audit(
        at=AT,
        action="access_granted",
        actor="alice",
        dedupe_key=key,
        notifications=notes if notes is not None else [note(key)],
        channels=list(channels),
    )


class FlakyChannel:
    """Fails its first `failures` sends (the fault injected), then delivers."""

    def __init__(self, name: str, failures: int = 0, error: Exception | None = None) -> None:
        self.name, self.failures, self.error = name, failures, error or ConnectionError("smtp down")
        self.attempts = 0
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.sent.append(notification)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_queued_with_the_audit_line_once_per_channel(store):
    await audit_with(store, "k1", channels=["log", "email"])
    await audit_with(store, "k1", channels=["log", "email"])  # an activity retried: the same line again
    rows = await store.notifications()
    assert sorted((r.channel, r.status) for r in rows) == [("email", "pending"), ("log", "pending")]
    assert all(r.payload["key"] == "k1" for r in rows)


async def test_delivered_once_and_marked_sent(store):
    await audit_with(store, "k2", channels=["log", "webhook"])
    log, webhook = LogChannel(), FlakyChannel("webhook")
    dispatcher = NotificationDispatcher(store, [log, webhook])
    assert await dispatcher.deliver_due() == 2
    assert await dispatcher.deliver_due() == 0
    assert [n.key for n in log.sent] == ["k2"] and [n.key for n in webhook.sent] == ["k2"]
    assert {r.status for r in await store.notifications()} == {"sent"}


async def test_a_failing_channel_is_retried_later_and_does_not_hold_the_others(store):
    await audit_with(store, "k3", channels=["log", "email"])
    clock = Clock()
    log, email = LogChannel(), FlakyChannel("email", failures=2)
    dispatcher = NotificationDispatcher(store, [log, email], clock=clock)
    await dispatcher.deliver_due()
    assert [n.key for n in log.sent] == ["k3"] and email.sent == []
    failed = (await store.notifications(status="pending"))[0]
    assert failed.channel == "email" and "smtp down" in failed.last_error and failed.attempts == 1
    assert await dispatcher.deliver_due() == 0  # not due yet: 5 s later
    clock.now += retry_delay(1)
    await dispatcher.deliver_due()
    clock.now += retry_delay(2)
    await dispatcher.deliver_due()
    assert [n.key for n in email.sent] == ["k3"] and email.attempts == 3
    assert len(log.sent) == 1  # the log channel was not sent again


async def test_a_permanent_refusal_or_an_unknown_channel_is_given_up(store):
    await audit_with(store, "k4", channels=["webhook", "email"])
    refusing = FlakyChannel("webhook", failures=1, error=PermanentDeliveryError("HTTP 400 from hooks.example"))
    dispatcher = NotificationDispatcher(store, [refusing])  # no email channel on this worker
    await dispatcher.deliver_due()
    rows = {r.channel: r for r in await store.notifications()}
    assert rows["webhook"].status == "failed" and "HTTP 400" in rows["webhook"].last_error
    assert rows["email"].status == "failed" and "not configured" in rows["email"].last_error
    assert await dispatcher.deliver_due() == 0


async def test_two_dispatchers_never_send_the_same_row(store):
    for i in range(30):
        await audit_with(store, f"many-{i}")
    first, second = LogChannel(), LogChannel()
    one, two = NotificationDispatcher(store, [first]), NotificationDispatcher(store, [second])
    while sum(await asyncio.gather(one.deliver_due(limit=7), two.deliver_due(limit=7))):
        pass
    keys = [n.key for n in first.sent + second.sent]
    assert sorted(keys) == sorted(f"many-{i}" for i in range(30))  # each exactly once


def test_retry_delay_grows_and_is_capped():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert retry_delay(40) == timedelta(hours=1)


async def test_a_burst_is_woken_at_once_and_sent_in_few_claims(store):
    """Queuing wakes the dispatcher (no waiting for the 5 s poll); what queues while
    it gathers goes out together rather than one claim per audit line."""
    claims = 0
    claim = store.claim_notifications

    async def counted_claim(**options):
        nonlocal claims
        claims += 1
        return await claim(**options)

    store.claim_notifications = counted_claim
    channel = FlakyChannel("log")
    # A gathering window longer than the default, so that a slow machine still
    # queues the whole burst inside it.
    async with dispatching(store, [channel], poll=timedelta(minutes=1), gather=timedelta(seconds=2)):
        for i in range(30):
            await audit_with(store, f"burst-{i}")
        await eventually(
            lambda: channel.sent, until=lambda sent: len(sent) >= 30, what="the burst of 30", timeout=10, interval=0.1
        )
        assert sorted(n.key for n in channel.sent) == sorted(f"burst-{i}" for i in range(30))
        # The first look (which may catch the first rows), then one for the rest:
        # not one per line (without the gathering window it took 14 to 17 for these 30).
        assert claims <= 3, claims


async def test_a_stopping_worker_sends_what_is_due(store):
    channel = FlakyChannel("log")
    async with dispatching(store, [channel], poll=timedelta(minutes=1), gather=timedelta(minutes=1)):
        await asyncio.sleep(0.1)  # the dispatcher's first look, before anything is queued
        await audit_with(store, "last-words")  # wakes it into a gathering window longer than the test
    assert [n.key for n in channel.sent] == ["last-words"]
    assert {r.status for r in await store.notifications()} == {"sent"}
