"""The log channel: every notification as a structured log line. Always on."""

from __future__ import annotations

from pim.notifications.model import Notification, request_link
from pim.runtime.logging import get_logger


class LogChannel:
    name = "log"

    def __init__(self, portal_url: str | None = None) -> None:
        self.log = get_logger("pim.notify")
        self.portal_url = portal_url  # each line names the request's page there
        self.sent: list[Notification] = []  # kept for the operator's `pim` session and for tests

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)
        self.log.info(
            "notification",
            pim_event=notification.event,
            subject=notification.subject,
            recipients=[r.principal_id for r in notification.recipients],
            request_id=notification.request_id,
            group_id=notification.group_id,
            principal_id=notification.principal_id,
            link=request_link(self.portal_url, notification),
        )
