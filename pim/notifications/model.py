"""Notifications: what one says and who gets it, and the channels that carry it.

Activities never send: they write a `Notification` into the store's outbox in the
same transaction as the audit line that causes it (pim/store/outbox.py), and the
worker's dispatcher (pim/dispatch.py) hands it to each channel, retrying one
that fails. A mail server that is down delays the message, never the access.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from pim.domain.policy import NOTIFICATION_EVENTS

# The events a policy's notification rules choose from (SPEC section 2).
EVENTS = NOTIFICATION_EVENTS

Role = Literal["requestor", "approvers", "admins"]


class Recipient(BaseModel):
    principal_id: str
    role: Role
    email: str | None = None
    display_name: str = ""


class Notification(BaseModel):
    """One message, already addressed. `key` is unique per message (the outbox
    adds the channel), so a retried activity never queues it twice."""

    key: str
    event: str
    at: datetime
    subject: str
    recipients: list[Recipient] = Field(default_factory=list)
    request_id: str | None = None
    # The request's id in the HTTP API and the portal: one run of it, URL-safe
    # (pim/api/ids.py; `request_page_id`). Messages link to {PIM_PORTAL_URL}/requests/{it}.
    api_request_id: str | None = None
    group_id: str | None = None
    access: str | None = None
    principal_id: str | None = None
    # Plain facts for the message body (state, reason, expires_at, justification...).
    details: dict[str, str] = Field(default_factory=dict)
    # What a recipient can do next, exactly as typed (e.g. the `pim approve` command).
    actions: list[str] = Field(default_factory=list)


def request_page_id(run_key: str | None) -> str | None:
    """The API's and portal's id of an activation run (`{workflow id}#{run id}`):
    base64url without padding, as pim/api/ids.py writes it."""
    if not run_key or "#" not in run_key:
        return None
    return base64.urlsafe_b64encode(run_key.encode()).decode().rstrip("=")


def request_link(portal_url: str | None, notification: Notification) -> str | None:
    """The page of the notification's request in the portal, when both are known."""
    if not portal_url or not notification.api_request_id:
        return None
    return f"{portal_url.rstrip('/')}/requests/{notification.api_request_id}"


class Channel(Protocol):
    """Delivers one notification or raises; the dispatcher retries a channel that raised."""

    name: str

    async def send(self, notification: Notification) -> None: ...


class PermanentDeliveryError(Exception):
    """A channel's receiver refused the message for good (e.g. HTTP 400, 404): retrying
    the same message cannot succeed, so the dispatcher stops and records the failure."""
