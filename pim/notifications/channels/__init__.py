"""The channels notifications travel on, chosen by settings.

The log channel is always there; email joins when PIM_SMTP_HOST is set, a
webhook when PIM_WEBHOOK_URL is set. With PIM_PORTAL_URL, messages link to the
request's page in the portal. Each implements `pim.notifications.model.Channel`:
`send` delivers or raises, and the dispatcher retries (or, on a
`PermanentDeliveryError`, gives up).
"""

from __future__ import annotations

from pim.notifications.channels.email import EmailChannel
from pim.notifications.channels.log import LogChannel
from pim.notifications.channels.webhook import WebhookChannel, WebhookDeliveryError, WebhookRejected, verify_signature
from pim.notifications.model import Channel
from pim.runtime.logging import get_logger
from pim.runtime.settings import PimSettings

__all__ = ["EmailChannel", "WebhookChannel", "WebhookDeliveryError", "WebhookRejected", "build_channels", "verify_signature"]


def build_channels(settings: PimSettings) -> list[Channel]:
    channels: list[Channel] = [LogChannel(settings.portal_url)]
    if settings.smtp_host:
        channels.append(EmailChannel.from_settings(settings))
    if settings.webhook_url:
        channels.append(WebhookChannel.from_settings(settings))
    # Where messages go, never how they authenticate (the channels' reprs hold no secret).
    get_logger("pim.notifications.channels").info(
        "notification channels", channels=[c.name if isinstance(c, LogChannel) else repr(c) for c in channels]
    )
    return channels
