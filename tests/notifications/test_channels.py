"""The email and webhook channels against real local servers: an aiosmtpd SMTP
server and a stdlib HTTP server, each on 127.0.0.1 and a free port."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from pim.notifications.channels import EmailChannel, WebhookChannel, WebhookDeliveryError, WebhookRejected, build_channels
from pim.notifications.channels.log import LogChannel
from pim.notifications.channels.webhook import verify_signature
from pim.notifications.model import Notification, PermanentDeliveryError, Recipient
from pim.runtime.settings import PimSettings

REQUEST_ID = "activation/grp-ops/member/alice"
APPROVE = f'pim approve {REQUEST_ID} --as bob --justification "..."'
SECRET = "whsec-test-0123456789"


def notification(**changes) -> Notification:
    values = dict(
        key=f"{REQUEST_ID}:run1:activation_requested:approvers",
        event="activation_requested",
        at=dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.UTC),
        subject="alice asks for membership of grp-ops",
        recipients=[
            Recipient(principal_id="bob", role="approvers", email="bob@example.com", display_name="Bob B"),
            Recipient(principal_id="erin", role="approvers", email="erin@example.com"),
            Recipient(principal_id="frank", role="approvers"),
        ],
        request_id=REQUEST_ID,
        group_id="grp-ops",
        access="member",
        principal_id="alice",
        details={
            "duration": "PT2H",
            "justification": "INC-42 database failover",
            "ticket": "jira:OPS-123",
            "approval_deadline": "2026-11-29T13:00:00Z",
        },
        actions=[APPROVE],
    )
    values.update(changes)
    return Notification(**values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP ---------------------------------------------------------------------


class Collector:
    """An aiosmtpd handler that keeps every envelope and refuses addresses at refused.example."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp():
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield collector, controller.port
    controller.stop()


def received(envelope):
    return message_from_bytes(envelope.content, policy=policy.default)


async def test_email_reaches_every_recipient_with_an_address(smtp):
    collector, port = smtp
    channel = EmailChannel("127.0.0.1", port, sender="PIM <pim@corp.example>")
    with capture_logs() as logs:
        await channel.send(notification())
    [envelope] = collector.envelopes
    assert envelope.mail_from == "pim@corp.example"
    assert sorted(envelope.rcpt_tos) == ["bob@example.com", "erin@example.com"]
    message = received(envelope)
    assert message["Subject"] == "[PIM] alice asks for membership of grp-ops"
    assert message["To"] == "Bob B <bob@example.com>, erin@example.com"
    assert message["X-PIM-Event"] == "activation_requested" and message["X-PIM-Request-Id"] == REQUEST_ID
    assert message["Message-ID"] == channel.message_id(notification())
    assert message["Message-ID"].endswith("@corp.example>") and message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    body = message.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert f"    {APPROVE}\n" in body and "Justification: INC-42 database failover" in body
    assert "Decide before: 2026-11-29 13:00 UTC" in body
    # frank has no address: skipped, and said so.
    assert any(e["event"] == "email recipient skipped: no address" and e["principal_id"] == "frank" for e in logs)


async def test_a_retried_send_carries_the_same_message_id(smtp):
    collector, port = smtp
    channel = EmailChannel("127.0.0.1", port, sender="pim@corp.example")
    await channel.send(notification())
    await channel.send(notification())
    other = notification(key="another-key")
    await channel.send(other)
    ids = [received(e)["Message-ID"] for e in collector.envelopes]
    assert ids[0] == ids[1] != ids[2]


async def test_no_address_at_all_is_a_logged_no_op(smtp):
    collector, port = smtp
    with capture_logs() as logs:
        await EmailChannel("127.0.0.1", port, sender="pim@corp.example").send(
            notification(recipients=[Recipient(principal_id="frank", role="approvers")])
        )
    assert collector.envelopes == []
    assert any(e["event"] == "email not sent: no recipient has an address" for e in logs)


async def test_refused_recipients(smtp):
    collector, port = smtp
    channel = EmailChannel("127.0.0.1", port, sender="pim@corp.example")
    # One refused among accepted: delivered to the others (a retry would send them a second copy).
    await channel.send(
        notification(
            recipients=[
                Recipient(principal_id="bob", role="approvers", email="bob@example.com"),
                Recipient(principal_id="x", role="approvers", email="x@refused.example"),
            ]
        )
    )
    assert collector.envelopes[0].rcpt_tos == ["bob@example.com"]
    # All refused with 5xx: permanent.
    with pytest.raises(PermanentDeliveryError):
        await channel.send(notification(recipients=[Recipient(principal_id="x", role="admins", email="x@refused.example")]))


async def test_smtp_server_down_raises():
    channel = EmailChannel("127.0.0.1", free_port(), sender="pim@corp.example", timeout=2)
    with pytest.raises(OSError) as raised:  # aiosmtplib's SMTPConnectError is a ConnectionError
        await channel.send(notification())
    assert not isinstance(raised.value, PermanentDeliveryError)


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


class Accounts:
    def __init__(self) -> None:
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"pim", b"s3cret-pw")
        self.logins.append((auth_data.login, ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 on failure


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the socket is TLS; aiosmtpd cannot tell
@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_and_authentication(tmp_path, mode):
    server_ctx, client_ctx = self_signed(tmp_path)
    collector, accounts, port = Collector(), Accounts(), free_port()
    if mode == "starttls":  # TLS required before AUTH and MAIL
        controller = Controller(
            collector,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_ctx,
            require_starttls=True,
            authenticator=accounts,
            auth_required=True,
        )
    else:  # implicit TLS from the first byte
        controller = Controller(
            collector,
            hostname="127.0.0.1",
            port=port,
            ssl_context=server_ctx,
            authenticator=accounts,
            auth_required=True,
            auth_require_tls=False,
        )
    controller.start()
    try:
        channel = EmailChannel(
            "127.0.0.1",
            port,
            sender="pim@corp.example",
            username="pim",
            password="s3cret-pw",
            starttls=mode == "starttls",
            tls=mode == "tls",
            tls_context=client_ctx,
            timeout=5,
        )
        with capture_logs() as logs:
            await channel.send(notification())
        assert len(collector.envelopes) == 1 and accounts.logins == [(b"pim", True)]
        assert "s3cret-pw" not in repr(channel) and "s3cret-pw" not in str(logs)
        wrong = EmailChannel(
            "127.0.0.1",
            port,
            sender="pim@corp.example",
            username="pim",
            password="nope",
            starttls=mode == "starttls",
            tls=mode == "tls",
            tls_context=client_ctx,
            timeout=5,
        )
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as raised:
            await wrong.send(notification())
        assert "nope" not in str(raised.value)
    finally:
        controller.stop()


def test_email_settings_are_checked():
    with pytest.raises(ValueError, match="not both"):
        EmailChannel("h", sender="a@b", starttls=True, tls=True)
    with pytest.raises(ValueError, match="username and a password"):
        EmailChannel("h", sender="a@b", username="u")


# --- webhooks -----------------------------------------------------------------


class Receiver:
    """A stdlib HTTP server in a thread that records each POST and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


async def test_webhook_json_body_and_signature(receiver):
    channel = WebhookChannel(receiver.url + "/hooks/pim", secret=SECRET)
    await channel.send(notification())
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/pim" and headers["Content-Type"].startswith("application/json")
    assert headers["X-PIM-Delivery"] == notification().key and headers["X-PIM-Event"] == "activation_requested"
    assert verify_signature(SECRET, headers["X-PIM-Timestamp"], body, headers["X-PIM-Signature"])
    assert headers["X-PIM-Signature"].startswith("sha256=")
    # A changed body, another secret, a stale timestamp or no header do not verify.
    assert not verify_signature(SECRET, headers["X-PIM-Timestamp"], body + b" ", headers["X-PIM-Signature"])
    assert not verify_signature("other", headers["X-PIM-Timestamp"], body, headers["X-PIM-Signature"])
    assert not verify_signature(
        SECRET, headers["X-PIM-Timestamp"], body, headers["X-PIM-Signature"], now=int(headers["X-PIM-Timestamp"]) + 301
    )
    assert not verify_signature(SECRET, headers["X-PIM-Timestamp"], body, None)
    data = json.loads(body)
    assert set(data) == {"event", "key", "at", "subject", "text", "link", "notification"}
    assert data["link"] is None  # no PIM_PORTAL_URL: no page to link to
    assert data["event"] == "activation_requested" and data["key"] == notification().key
    assert data["subject"] == "[PIM] alice asks for membership of grp-ops" and f"    {APPROVE}" in data["text"]
    assert data["notification"]["actions"] == [APPROVE]
    assert data["notification"]["recipients"][0]["email"] == "bob@example.com"
    assert data["at"] == "2026-11-28T13:00:00+00:00"


async def test_webhook_slack_format(receiver):
    await WebhookChannel(receiver.url, format="slack").send(notification())
    [(_, headers, body)] = receiver.requests
    data = json.loads(body)
    assert set(data) == {"text", "blocks"} and "X-PIM-Signature" not in headers  # no secret: unsigned
    assert "your decision is needed" in data["text"]
    assert any(APPROVE in b.get("text", {}).get("text", "") for b in data["blocks"])
    assert all(b["type"] in ("section", "context") for b in data["blocks"])


@pytest.mark.parametrize(
    "status, permanent", [(500, False), (503, False), (429, False), (408, False), (400, True), (404, True), (410, True)]
)
async def test_webhook_failures_say_whether_to_retry(receiver, status, permanent):
    receiver.status = status
    with pytest.raises(Exception) as raised:
        await WebhookChannel(receiver.url, secret=SECRET).send(notification())
    assert isinstance(raised.value, PermanentDeliveryError) is permanent
    assert isinstance(raised.value, WebhookRejected if permanent else WebhookDeliveryError)
    assert raised.value.status == status


async def test_webhook_2xx_is_success(receiver):
    receiver.status = 204
    await WebhookChannel(receiver.url, secret=SECRET).send(notification())
    assert len(receiver.requests) == 1


async def test_webhook_unreachable_raises_retryable_without_the_secret_url():
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/secret-path-token"
    channel = WebhookChannel(url, timeout=2)
    with capture_logs() as logs, pytest.raises(WebhookDeliveryError) as raised:
        await channel.send(notification())
    assert not isinstance(raised.value, PermanentDeliveryError)
    assert "secret-path-token" not in str(raised.value) and "secret-path-token" not in repr(channel)
    assert "secret-path-token" not in str(logs) and raised.value.__cause__ is None


# --- wiring -------------------------------------------------------------------


def test_build_channels_follows_the_settings(monkeypatch):
    for name in ("PIM_SMTP_HOST", "PIM_WEBHOOK_URL", "PIM_WEBHOOK_SECRET", "PIM_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    [only] = build_channels(PimSettings())
    assert isinstance(only, LogChannel)
    monkeypatch.setenv("PIM_SMTP_HOST", "mail.corp.example")
    monkeypatch.setenv("PIM_SMTP_PORT", "587")
    monkeypatch.setenv("PIM_SMTP_STARTTLS", "true")
    monkeypatch.setenv("PIM_SMTP_USERNAME", "pim")
    monkeypatch.setenv("PIM_SMTP_PASSWORD", "smtp-pw-xyz")
    monkeypatch.setenv("PIM_WEBHOOK_URL", "https://hooks.example/services/abc-url-secret")
    monkeypatch.setenv("PIM_WEBHOOK_SECRET", "hook-secret-xyz")
    monkeypatch.setenv("PIM_WEBHOOK_FORMAT", "slack")
    settings = PimSettings()
    with capture_logs() as logs:
        log, email, webhook = build_channels(settings)
    assert (log.name, email.name, webhook.name) == ("log", "email", "webhook")
    assert (email.host, email.port, email.starttls, email.tls, email.username) == ("mail.corp.example", 587, True, False, "pim")
    assert webhook.format == "slack" and webhook.target == "https://hooks.example"
    for secret in ("smtp-pw-xyz", "hook-secret-xyz", "abc-url-secret"):
        assert secret not in str(logs) and secret not in repr(settings)
