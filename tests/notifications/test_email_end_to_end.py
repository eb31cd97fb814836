"""The approver's email, end to end: alice asks for grp-ops, the workflow admits
the request, the dispatcher sends through a real local SMTP server (aiosmtpd),
and bob's mailbox holds a message with the facts and the exact command that
approves it. Then a mail server that goes away loses nothing: the message
waits in the outbox and arrives once the server is back."""

from __future__ import annotations

import email
from email.policy import default as email_policy

from aiosmtpd.controller import Controller

from pim.domain.models import AccessType, State
from pim.notifications.channels.email import EmailChannel
from pim.notifications.channels.log import LogChannel
from tests.conftest import running_worker
from tests.notifications.test_channels import Collector, free_port
from tests.polling import eventually, settled
from tests.workflows.test_approval import request_ops, set_ops_approval

MEMBER = AccessType.member


async def use_email(demo) -> None:
    policy = (await demo.policy("grp-ops", MEMBER))[0]
    await demo.set_policy(
        "grp-ops",
        MEMBER,
        policy.model_copy(update={"notifications": policy.notifications.model_copy(update={"channels": ["log", "email"]})}),
        by="admin",
    )


def messages(collector: Collector) -> list:
    return [email.message_from_bytes(e.content, policy=email_policy) for e in collector.envelopes]


async def arrived(collector: Collector, recipient: str) -> list:
    """The messages to `recipient`, once there is one (a failure shows whom the others were to)."""
    await eventually(
        lambda: [m["To"] for m in messages(collector)],
        until=lambda to: any(recipient in t for t in to),
        what=f"a message for {recipient}",
    )
    return [m for m in messages(collector) if recipient in m["To"]]


async def test_the_approver_gets_an_email_with_the_command_that_approves(time_env, demo):
    await set_ops_approval(demo, (["bob"], 1))
    await use_email(demo)
    collector = Collector()
    server = Controller(collector, hostname="127.0.0.1", port=free_port())
    server.start()
    try:
        channel = EmailChannel("127.0.0.1", server.port, sender="pim@corp.example")
        async with running_worker(time_env, demo, channels=[LogChannel(), channel]) as pim:
            rid = await request_ops(pim, demo)
            [to_bob] = await arrived(collector, "bob@example.com")
            body = to_bob.get_body(preferencelist=("plain",)).get_content()
            assert f"pim approve {rid} --as bob" in body and f"pim deny {rid} --as bob" in body
            assert "INC-42 database failover" in body and "alice" in body and "grp-ops" in body
            assert to_bob["X-PIM-Request-Id"] == rid
            assert "alice@example.com" not in to_bob["To"]  # the requester has a message of her own
            await arrived(collector, "alice@example.com")
    finally:
        server.stop()


async def test_a_mail_server_that_was_down_gets_the_message_later(time_env, demo):
    await set_ops_approval(demo)  # no approval: granted at once
    await use_email(demo)
    port = free_port()
    channel = EmailChannel("127.0.0.1", port, sender="pim@corp.example", timeout=2)
    collector = Collector()
    async with running_worker(time_env, demo, channels=[LogChannel(), channel]) as pim:
        rid = await request_ops(pim, demo)
        assert (await settled(pim, rid)).state == State.active  # nobody waited for the mail server

        async def failed_sends() -> set[str]:
            return {r.event for r in await demo.notifications(status="pending", request_id=rid) if r.last_error}

        await eventually(
            failed_sends,
            until=lambda events: events == {"activation_requested", "activation_active"},
            what="the failed sends to be recorded",
        )
        server = Controller(collector, hostname="127.0.0.1", port=port)
        server.start()
        try:
            # The dispatcher retries 5 s after the failure (pim/dispatch.py).
            await eventually(
                lambda: collector.envelopes, until=lambda sent: len(sent) >= 2, what="both messages to arrive", timeout=20
            )
            subjects = sorted(m["Subject"] for m in messages(collector))
            assert any("Activation requested" in s for s in subjects) and any("Access granted" in s for s in subjects)

            async def email_statuses() -> set[str]:
                return {r.status for r in await demo.notifications(request_id=rid) if r.channel == "email"}

            # The dispatcher records a send once the server has accepted it: a moment after it arrives.
            await eventually(email_statuses, until=lambda statuses: statuses == {"sent"}, what="both sends to be recorded")
        finally:
            server.stop()
