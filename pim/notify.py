"""Notifications behind one interface; the log channel is the default and
later channels (email, webhook) plug in beside it."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from pim.logging import get_logger


class Notification(BaseModel):
    event: str
    recipients: list[str] = Field(default_factory=list)
    subject: str
    details: dict[str, str] = Field(default_factory=dict)


class Channel(Protocol):
    name: str

    async def send(self, notification: Notification) -> None: ...


class LogChannel:
    name = "log"

    def __init__(self) -> None:
        self.log = get_logger("pim.notify")
        self.sent: list[Notification] = []  # kept for the operator's `pim` session and for tests

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)
        self.log.info("notification", pim_event=notification.event, recipients=notification.recipients,
                      subject=notification.subject, **notification.details)


class Notifier:
    def __init__(self, channels: list[Channel] | None = None) -> None:
        self.channels = channels or [LogChannel()]

    async def send(self, notification: Notification) -> None:
        for channel in self.channels:
            await channel.send(notification)
