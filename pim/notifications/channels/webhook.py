"""Webhooks: one signed HTTP POST per notification (httpx).

Body, format "json":
    {"event": ..., "key": ..., "at": ..., "subject": ..., "text": ..., "link": ..., "notification": {...}}
`link` is the request's page in the portal ({PIM_PORTAL_URL}/requests/{id}), or null.
format "slack": the body of a Slack incoming webhook (`text` and `blocks`).

Headers:
    X-PIM-Delivery:  the notification's key; the same on every retry, so a
                     receiver that saw it already can drop the copy
    X-PIM-Timestamp: Unix seconds of this attempt
    X-PIM-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"> with the
                     shared secret (only when a secret is configured)

A receiver checks the signature over the raw body bytes with `verify_signature`,
which also refuses a timestamp older than five minutes (a replayed delivery).

Outcome: 2xx is delivered; 408, 429, 5xx and connection errors raise
`WebhookDeliveryError` (the dispatcher retries); any other status raises
`WebhookRejected`, a `PermanentDeliveryError` (retrying cannot help).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from pydantic import SecretStr

from pim.notifications.messages import render_slack, render_text
from pim.notifications.model import Notification, PermanentDeliveryError, request_link
from pim.runtime.http import http_client
from pim.runtime.logging import get_logger
from pim.runtime.settings import PimSettings

log = get_logger("pim.notifications.channels.webhook")

SIGNATURE_TOLERANCE = 300  # seconds a receiver accepts between our timestamp and its clock
_RETRYABLE = {408, 429}


class WebhookDeliveryError(Exception):
    """The receiver could not take the message now (429, 5xx, no connection): retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WebhookRejected(PermanentDeliveryError):
    """The receiver refused this message for good (a 4xx other than 408/429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The X-PIM-Signature value for `body` sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes | str,
    header: str | None,
    *,
    tolerance: float | None = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """For receivers: True when `header` (X-PIM-Signature) is the signature of the
    raw request `body` with X-PIM-Timestamp `timestamp`, and that timestamp is
    within `tolerance` seconds of `now` (None: no age check).

        ok = verify_signature(SECRET, request.headers["X-PIM-Timestamp"], raw_body,
                              request.headers.get("X-PIM-Signature"))

    Use the bytes as received, never a re-serialised JSON: one changed space
    changes the signature."""
    if not header or not header.startswith("sha256="):
        return False
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else body
    # Constant-time comparison: a timing difference must not reveal the signature byte by byte.
    return hmac.compare_digest(sign(secret, sent_at, raw), header.strip())


def payload(notification: Notification, format: str = "json", portal_url: str | None = None) -> dict:
    """The body: Slack's, or ours with `link`, the request's page in the portal (or null)."""
    if format == "slack":
        return render_slack(notification, portal_url)
    subject, text = render_text(notification, portal_url)
    return {
        "event": notification.event,
        "key": notification.key,
        "at": notification.at.isoformat(),
        "subject": subject,
        "text": text,
        "link": request_link(portal_url, notification),
        "notification": notification.model_dump(mode="json"),
    }


class WebhookChannel:
    """`WebhookChannel(url, *, secret=None, format="json", timeout=10.0, portal_url=None)`.

    `client` may be a shared httpx.AsyncClient (the caller closes it); without
    one, each send opens and closes its own, which suits a low message rate."""

    def __init__(
        self,
        url: str | SecretStr,
        *,
        secret: str | SecretStr | None = None,
        format: str = "json",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        name: str = "webhook",
        portal_url: str | None = None,
    ) -> None:
        if format not in ("json", "slack"):
            raise ValueError(f"webhook: format must be json or slack, not {format!r}")
        url = url.get_secret_value() if isinstance(url, SecretStr) else url
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("webhook: the URL must be http(s)://host/...")
        self.name = name
        self._url = url
        # The URL's path and query may be a credential (a Slack webhook's is): log only where it goes.
        self.target = f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
        self._secret = secret if isinstance(secret, SecretStr) or secret is None else SecretStr(secret)
        self.format, self.timeout, self._client = format, timeout, client
        self.portal_url = portal_url  # messages link to the request's page there
        if self._secret is None and format == "json":
            log.warning("webhook deliveries are not signed: set PIM_WEBHOOK_SECRET", target=self.target)

    @classmethod
    def from_settings(cls, settings: PimSettings) -> WebhookChannel:
        if not settings.webhook_url:
            raise ValueError("webhook channel: set PIM_WEBHOOK_URL")
        return cls(
            settings.webhook_url,
            secret=settings.webhook_secret,
            format=settings.webhook_format,
            timeout=settings.webhook_timeout,
            portal_url=settings.portal_url,
        )

    def __repr__(self) -> str:
        return f"WebhookChannel({self.target}, format={self.format!r}, signed={self._secret is not None})"

    def request(self, notification: Notification, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """The exact body bytes and headers one attempt sends."""
        body = json.dumps(payload(notification, self.format, self.portal_url), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time() if now is None else now))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "pim-groups",
            "X-PIM-Event": notification.event,
            "X-PIM-Delivery": notification.key,
            "X-PIM-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-PIM-Signature"] = sign(self._secret.get_secret_value(), timestamp, body)
        return body, headers

    async def send(self, notification: Notification) -> None:
        body, headers = self.request(notification)
        try:
            if self._client is not None:
                response = await self._client.post(self._url, content=body, headers=headers, timeout=self.timeout)
            else:
                # Redirects are not followed: a signed body must not be handed to a host we were not given.
                async with http_client(timeout=self.timeout, follow_redirects=False) as client:
                    response = await client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            # httpx's message can name the URL, whose path may be a credential: show the target instead,
            # and drop the chained exception, which would print the URL in a traceback.
            detail = str(error).replace(self._url, self.target)
            log.warning(
                "webhook not delivered",
                target=self.target,
                error_type=type(error).__name__,
                error=detail,
                notification_key=notification.key,
            )
            raise WebhookDeliveryError(f"webhook {self.target}: {type(error).__name__}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            log.info(
                "webhook delivered",
                target=self.target,
                status=status,
                notification_key=notification.key,
                pim_event=notification.event,
            )
            return
        log.warning("webhook refused", target=self.target, status=status, notification_key=notification.key)
        if status in _RETRYABLE or status >= 500:
            raise WebhookDeliveryError(f"webhook {self.target} answered {status}", status)
        raise WebhookRejected(f"webhook {self.target} answered {status}: the message will not be retried", status)
