"""Notifications link to the request's page in the portal: {PIM_PORTAL_URL}/requests/{id},
the id being the API's (one run of the request, URL-safe), in the e-mail's text, the
webhook's body (text, Slack blocks and `link`) and the log line; `pim dev` links to
its own portal. Without PIM_PORTAL_URL nothing changes."""

from __future__ import annotations

import datetime as dt
import socket

from structlog.testing import capture_logs

from pim.api.ids import RequestRef, parse_request_id
from pim.cli.dev import _linking_to_portal
from pim.domain.status import journal_key, run_key_of
from pim.notifications.channels import EmailChannel, WebhookChannel, build_channels
from pim.notifications.channels.log import LogChannel
from pim.notifications.channels.webhook import payload
from pim.notifications.messages import render_slack, render_text
from pim.notifications.model import Notification, Recipient, request_link, request_page_id
from pim.runtime.settings import PimSettings

WORKFLOW_ID = "activation/grp-ops/member/alice"
RUN_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
RUN_KEY = f"{WORKFLOW_ID}#{RUN_ID}"
PAGE_ID = RequestRef(WORKFLOW_ID, RUN_ID).id
PORTAL = "https://pim.example.com"
APPROVE = f'pim approve {WORKFLOW_ID} --as bob --justification "..."'


def approval_request(**changes: object) -> Notification:
    values: dict[str, object] = dict(
        key=f"{RUN_KEY}:requested:approver:bob",
        event="activation_requested",
        at=dt.datetime(2026, 11, 28, 13, 0, tzinfo=dt.UTC),
        subject="Approval needed: member of grp-ops for alice",
        recipients=[Recipient(principal_id="bob", role="approvers", email="bob@example.com")],
        request_id=WORKFLOW_ID,
        api_request_id=request_page_id(RUN_KEY),
        group_id="grp-ops",
        access="member",
        principal_id="alice",
        details={"duration": "PT2H", "justification": "INC-42", "approval_deadline": "2026-11-29T13:00:00Z"},
        actions=[APPROVE],
    )
    values.update(changes)
    return Notification.model_validate(values)


def test_the_page_id_is_the_apis_request_id_and_the_run_is_read_back_from_the_audit_key():
    assert request_page_id(RUN_KEY) == PAGE_ID
    assert parse_request_id(PAGE_ID) == RequestRef(WORKFLOW_ID, RUN_ID)
    assert request_page_id(None) is None and request_page_id(WORKFLOW_ID) is None  # no run: no page
    assert run_key_of(journal_key(RUN_KEY, 7, "request_approved")) == RUN_KEY
    for other in (None, "", "asg-1:reminder", f"{WORKFLOW_ID}:3:request_approved", "reconcile:2026-01-01T00:00:00:x"):
        assert run_key_of(other) is None, other


def test_an_approval_request_links_to_the_page_to_decide_and_keeps_its_commands():
    link = f"{PORTAL}/requests/{PAGE_ID}"
    assert request_link(PORTAL + "/", approval_request()) == link
    _, body = render_text(approval_request(), PORTAL)
    assert f"Decide in the portal:\n\n    {link}\n\nOr run one of these commands" in body
    assert f"    {APPROVE}" in body
    slack = render_slack(approval_request(), PORTAL)
    assert {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Decide in the portal>"}} in slack["blocks"]
    assert APPROVE in str(slack["blocks"])


def test_other_messages_link_to_the_request_and_without_a_portal_url_nothing_changes():
    ended = approval_request(event="activation_ended", subject="Activation expired", recipients=[], actions=[])
    assert f"See the request in the portal:\n\n    {PORTAL}/requests/{PAGE_ID}" in render_text(ended, PORTAL)[1]
    assert render_text(approval_request()) == render_text(approval_request(), None)
    assert "portal" not in render_text(approval_request())[1]
    assert "To decide, run one of these commands" in render_text(approval_request())[1]
    assert "/requests/" not in render_text(approval_request(api_request_id=None), PORTAL)[1]  # an older message: no run


async def test_the_channels_take_the_portal_url_from_the_settings():
    settings = PimSettings(portal_url=PORTAL, smtp_host="mail.invalid", webhook_url="https://hooks.example.com/x")
    log, email, webhook = build_channels(settings)
    assert isinstance(log, LogChannel) and isinstance(email, EmailChannel) and isinstance(webhook, WebhookChannel)
    link = f"{PORTAL}/requests/{PAGE_ID}"
    message = email.build(approval_request())
    assert message is not None and f"    {link}\n" in message.get_content()
    assert payload(approval_request(), "json", webhook.portal_url)["link"] == link
    assert link in webhook.request(approval_request())[0].decode()
    with capture_logs() as lines:
        await log.send(approval_request())
    assert lines[0]["link"] == link


def test_pim_dev_links_to_its_own_portal_unless_told_otherwise():
    with socket.socket() as api_socket:
        api_socket.bind(("127.0.0.1", 0))
        port = api_socket.getsockname()[1]
        assert _linking_to_portal(PimSettings(), api_socket).portal_url == f"http://localhost:{port}"
        assert _linking_to_portal(PimSettings(portal_url=PORTAL), api_socket).portal_url == PORTAL
        assert _linking_to_portal(PimSettings(portal=False), api_socket).portal_url is None
    assert _linking_to_portal(PimSettings(), None).portal_url is None  # no API, no portal
