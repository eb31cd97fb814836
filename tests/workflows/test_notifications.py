"""Notifications along an activation (issue 7): who is told of what, approvers
get the exact commands, and a channel that is down never delays the access.

Time-skipping server, demo tenant: alice asks for grp-ops membership, which bob
approves (SPEC section 8); grp-dev needs no approval."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pim.domain.models import AccessType, State
from pim.notifications.channels.log import LogChannel
from tests.conftest import running_worker
from tests.polling import eventually, settled
from tests.store.test_outbox import FlakyChannel
from tests.workflows.test_approval import finish, request_ops, set_ops_approval

MEMBER = AccessType.member


async def delivered(channel, count: int, what: str) -> list:
    """What `channel` has sent, once that is at least `count` notifications."""
    return await eventually(lambda: channel.sent, until=lambda sent: len(sent) >= count, what=f"delivery of {what}")


def told(notification) -> dict[str, str]:
    return {r.principal_id: r.role for r in notification.recipients}


async def test_an_uneventful_activation_tells_the_requestor_and_the_admins_three_times(time_env, demo):
    await set_ops_approval(demo)  # no stages: granted at once
    channel = LogChannel()
    async with running_worker(time_env, demo, channels=[channel]) as pim:
        rid = await request_ops(pim, demo)
        assert (await settled(pim, rid)).state == State.active
        final = await finish(time_env, pim, rid)
        assert final.state == State.expired
        sent = await delivered(channel, 3, "requested, active, ended")
    assert [n.event for n in sent] == ["activation_requested", "activation_active", "activation_ended"]
    for notification in sent:
        assert notification.request_id == rid and told(notification)["alice"] == "requestor"
        assert told(notification)["admin"] == "admins"
    assert sent[1].details["expires_at"] == final.expires_at.isoformat()
    assert sent[2].details["state"] == "expired"
    await asyncio.sleep(0.3)
    assert len(channel.sent) == 3  # each once, however often the dispatcher looks


async def test_the_approver_gets_the_exact_commands_and_the_requestor_hears_the_decision(time_env, demo):
    await set_ops_approval(demo, (["bob"], 1))
    channel = LogChannel()
    async with running_worker(time_env, demo, channels=[channel]) as pim:
        rid = await request_ops(pim, demo)
        asked = [n for n in await delivered(channel, 2, "requested") if n.actions]
        assert len(asked) == 1 and told(asked[0]) == {"bob": "approvers"}
        assert asked[0].actions[0] == f'pim approve {rid} --as bob --justification "..."'
        assert asked[0].actions[1].startswith(f"pim deny {rid} --as bob")
        assert asked[0].details["justification"] and asked[0].details["approval_deadline"]
        await pim.review(rid, "bob", "approve", "on call, confirmed the incident")
        sent = await delivered(channel, 4, "approved, active")
        events = [n.event for n in sent]
        assert "request_approved" in events and "activation_active" in events
        approved = next(n for n in sent if n.event == "request_approved")
        assert told(approved)["alice"] == "requestor"


async def test_a_mail_server_that_is_down_delays_the_message_never_the_grant(time_env, demo):
    await set_ops_approval(demo)
    email = FlakyChannel("email", failures=10**6)
    await demo.set_policy(
        "grp-ops",
        MEMBER,
        (await demo.policy("grp-ops", MEMBER))[0].model_copy(
            update={
                "notifications": (await demo.policy("grp-ops", MEMBER))[0].notifications.model_copy(
                    update={"channels": ["log", "email"]}
                )
            }
        ),
        by="admin",
    )
    log = LogChannel()
    async with running_worker(time_env, demo, channels=[log, email]) as pim:
        rid = await request_ops(pim, demo)
        assert (await settled(pim, rid)).state == State.active
        await delivered(log, 2, "requested and active on the log channel")
        await time_env.sleep(timedelta(minutes=1))

        async def tried() -> list:
            rows = await demo.notifications(status="pending", request_id=rid)
            return [r for r in rows if r.channel == "email" and "smtp down" in (r.last_error or "")]

        # Each email is tried (and fails) in the dispatcher's own time: wait for both tries.
        await eventually(tried, what="both emails tried against the mail server", until=lambda rows: len(rows) == 2)
    assert email.sent == [] and email.attempts >= 2
    waiting = await demo.notifications(status="pending", request_id=rid)
    assert {r.event for r in waiting} == {"activation_requested", "activation_active"}
    assert all(r.channel == "email" and "smtp down" in r.last_error for r in waiting)


async def test_the_next_stage_is_asked_once_the_first_approves_with_the_facts_to_decide(time_env, demo):
    await set_ops_approval(demo, (["bob"], 1), (["carol"], 1))
    channel = LogChannel()
    async with running_worker(time_env, demo, channels=[channel]) as pim:
        rid = await request_ops(pim, demo)
        await delivered(channel, 2, "requested")
        assert not any("carol" in told(n) for n in channel.sent)  # stage 2 waits for stage 1
        await pim.review(rid, "bob", "approve", "on call, confirmed the incident")
        sent = await delivered(channel, 4, "approved, and carol asked")
    approved = next(n for n in sent if n.event == "request_approved")
    assert approved.details["approver"] == "bob"
    assert approved.details["approver_justification"] == "on call, confirmed the incident"
    asked = [n for n in sent if n.event == "activation_requested" and "carol" in told(n)]
    assert len(asked) == 1 and told(asked[0]) == {"carol": "approvers"}
    assert asked[0].actions[0].startswith(f"pim approve {rid} --as carol")
    assert asked[0].details["justification"] == "INC-42 database failover"  # the requester's, not bob's
    assert asked[0].details["duration"] == "PT2H" and asked[0].details["stage"] == "2 of 2"
    assert asked[0].details["approval_deadline"]
