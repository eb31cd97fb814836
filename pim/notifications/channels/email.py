"""Email over SMTP (aiosmtplib): one message per notification, to every
recipient that has an address.

A failure raises, and the dispatcher retries. The Message-ID is derived from
`notification.key`, so a message sent again after a lost reply carries the same
id and mail clients and archives can tell it is the same message.
"""

from __future__ import annotations

import hashlib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from pydantic import SecretStr

from pim.notifications.messages import render_text
from pim.notifications.model import Notification, PermanentDeliveryError
from pim.runtime.logging import get_logger
from pim.runtime.settings import PimSettings

log = get_logger("pim.notifications.channels.email")


class EmailChannel:
    """`EmailChannel(host, port=25, *, sender, username=None, password=None,
    starttls=False, tls=False, timeout=10.0, portal_url=None)`.

    `starttls` upgrades a plain connection (usually port 587), `tls` speaks TLS
    from the first byte (usually 465); both verify the server's certificate
    (pass `tls_context` for a private CA)."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        username: str | None = None,
        password: str | SecretStr | None = None,
        starttls: bool = False,
        tls: bool = False,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        name: str = "email",
        portal_url: str | None = None,
    ) -> None:
        if starttls and tls:
            raise ValueError("email: choose STARTTLS or implicit TLS, not both")
        if (username is None) != (password is None):
            raise ValueError("email: give both a username and a password, or neither")
        self.name = name
        self.host, self.port, self.sender = host, port, sender
        self.username = username
        # Kept as a SecretStr so that a repr, a log line or a traceback never shows it.
        self._password = password if isinstance(password, SecretStr) or password is None else SecretStr(password)
        self.starttls, self.tls, self.timeout, self.tls_context = starttls, tls, timeout, tls_context
        self._domain = _domain_of(sender)
        self.portal_url = portal_url  # messages link to the request's page there

    @classmethod
    def from_settings(cls, settings: PimSettings) -> EmailChannel:
        if not settings.smtp_host:
            raise ValueError("email channel: set PIM_SMTP_HOST")
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
            portal_url=settings.portal_url,
        )

    def __repr__(self) -> str:
        return f"EmailChannel({self.host}:{self.port}, sender={self.sender!r}, tls={self.tls}, starttls={self.starttls})"

    def message_id(self, notification: Notification) -> str:
        digest = hashlib.sha256(notification.key.encode()).hexdigest()[:32]
        return f"<pim.{digest}@{self._domain}>"

    def build(self, notification: Notification) -> EmailMessage | None:
        """The message for `notification`, or None when no recipient has an address."""
        to: list[Address] = []
        for recipient in notification.recipients:
            if not recipient.email:
                log.warning(
                    "email recipient skipped: no address", principal_id=recipient.principal_id, notification_key=notification.key
                )
                continue
            try:
                to.append(Address(display_name=recipient.display_name, addr_spec=recipient.email.strip()))
            except (ValueError, IndexError) as error:  # the email package's parse errors are ValueErrors
                log.warning(
                    "email recipient skipped: invalid address",
                    principal_id=recipient.principal_id,
                    notification_key=notification.key,
                    error=str(error),
                )
        if not to:
            return None
        subject, body = render_text(notification, self.portal_url)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = to
        # The event's time, not the attempt's: a retried send is the same message.
        message["Date"] = format_datetime(notification.at)
        message["Message-ID"] = self.message_id(notification)
        # RFC 3834: out-of-office replies must not answer a machine.
        message["Auto-Submitted"] = "auto-generated"
        message["X-PIM-Event"] = notification.event
        if notification.request_id:
            message["X-PIM-Request-Id"] = notification.request_id
        message["X-PIM-Key"] = notification.key
        message.set_content(body)
        return message

    async def send(self, notification: Notification) -> None:
        message = self.build(notification)
        if message is None:
            log.info(
                "email not sent: no recipient has an address", notification_key=notification.key, pim_event=notification.event
            )
            return
        recipients = [a.addr_spec for a in message["To"].addresses]
        try:
            refused, _ = await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password.get_secret_value() if self._password else None,
                use_tls=self.tls,
                start_tls=self.starttls,
                timeout=self.timeout,
                tls_context=self.tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            log.warning("email refused for every recipient", notification_key=notification.key, codes=codes)
            if codes and all(500 <= code < 600 for code in codes):
                # 5xx is the server's final word on these addresses: sending again cannot help.
                raise PermanentDeliveryError(f"email: every recipient refused ({codes})") from error
            raise
        except (aiosmtplib.SMTPException, OSError) as error:
            log.warning(
                "email not sent",
                server=f"{self.host}:{self.port}",
                error_type=type(error).__name__,
                error=str(error),
                notification_key=notification.key,
            )
            raise
        if refused:
            # Some addresses were accepted: a retry would send them a second copy, so only log.
            log.warning(
                "email refused for some recipients",
                notification_key=notification.key,
                refused={addr: r.code for addr, r in refused.items()},
            )
        log.info(
            "email sent",
            notification_key=notification.key,
            pim_event=notification.event,
            recipients=len(recipients) - len(refused),
            server=f"{self.host}:{self.port}",
        )


def _domain_of(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rpartition("@")[2] or "pim.localhost"
