"""What notifications say: an approver can decide from the message alone, and
the commands in it are the ones `pim approve`/`pim deny` take, verbatim."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import pytest

from pim.notifications.messages import approval_commands, facts, is_secret_key, render_slack, render_text, subject
from pim.notifications.model import EVENTS, Notification, Recipient

REQUEST_ID = "activation/grp-ops/member/alice"
APPROVE = f'pim approve {REQUEST_ID} --as bob --justification "..."'
DENY = f'pim deny {REQUEST_ID} --as bob --justification "..."'


def approval_request(**changes) -> Notification:
    values = dict(
        key="activation/grp-ops/member/alice:run1:activation_requested:bob",
        event="activation_requested",
        at=datetime(2026, 11, 28, 13, 0, tzinfo=UTC),
        subject="alice asks for membership of grp-ops",
        recipients=[Recipient(principal_id="bob", role="approvers", email="bob@example.com", display_name="Bob")],
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
        actions=[APPROVE, DENY],
    )
    values.update(changes)
    return Notification(**values)


def test_an_approver_gets_every_fact_needed_to_decide():
    title, body = render_text(approval_request())
    assert title == "[PIM] alice asks for membership of grp-ops"
    first = body.splitlines()[0]
    assert first == "alice asks for membership of grp-ops for 2 h (PT2H): your decision is needed."
    for fact in (
        "Request:       activation/grp-ops/member/alice",
        "Requested by:  alice",
        "Group:         grp-ops",
        "Access:        member (membership)",
        "Duration:      2 h (PT2H)",
        "Justification: INC-42 database failover",
        "Ticket:        jira:OPS-123",
        "Decide before: 2026-11-29 13:00 UTC",
    ):
        assert fact in body.splitlines(), fact
    assert "Without a decision by 2026-11-29 13:00 UTC, the request expires." in body


def test_the_commands_are_shown_verbatim_each_on_its_own_line():
    _, body = render_text(approval_request())
    lines = body.splitlines()
    assert f"    {APPROVE}" in lines and f"    {DENY}" in lines
    # What the approver copies is exactly what the CLI parses: request id, --as, --justification.
    argv = shlex.split(lines[lines.index(f"    {APPROVE}")].strip())
    assert argv == ["pim", "approve", REQUEST_ID, "--as", "bob", "--justification", "..."]


def test_owner_access_and_an_approval_without_duration_or_deadline():
    _, body = render_text(approval_request(access="owner", details={"justification": "rotate keys"}))
    assert body.startswith("alice asks for ownership of grp-ops: your decision is needed.")
    assert "Access:        owner (ownership)" in body and "Decide before" not in body and "expires." not in body


def test_approval_commands_quote_what_a_shell_would_split():
    assert approval_commands(REQUEST_ID, "bob") == [APPROVE, DENY]
    approve, _ = approval_commands("activation/grp ops/member/a b", "o'brien")
    assert shlex.split(approve)[2:5] == ["activation/grp ops/member/a b", "--as", "o'brien"]


def test_a_multi_line_justification_stays_aligned():
    _, body = render_text(approval_request(details={"justification": "line one\nline two"}))
    assert "Justification: line one\n               line two\n" in body


def test_secrets_and_secret_looking_details_are_never_shown():
    details = {
        "justification": "ok",
        "mfa_code": "123456",
        "code": "654321",
        "api_token": "tok-1",
        "client_secret": "s3cr3t",
        "password": "hunter2",
        "session_key": "k-9",
        "footprint": "small",
    }
    n = approval_request(details=details)
    _, body = render_text(n)
    slack = str(render_slack(n))
    for secret in ("123456", "654321", "tok-1", "s3cr3t", "hunter2", "k-9"):
        assert secret not in body and secret not in slack
    assert "Footprint:" in body  # an unknown, harmless key is still shown ("otp" inside a word is no secret)
    assert is_secret_key("X-Auth-Token") and is_secret_key("otp") and not is_secret_key("ticket")


@pytest.mark.parametrize(
    "event, details, expected",
    [
        ("request_approved", {"approver": "bob"}, "The request of alice for membership of grp-ops was approved by bob."),
        (
            "request_denied",
            {"approver": "bob", "approver_justification": "not now"},
            "The request of alice for membership of grp-ops was denied by bob.",
        ),
        (
            "activation_active",
            {"expires_at": "2026-11-28T15:00:00+00:00"},
            "alice now holds membership of grp-ops until 2026-11-28 15:00 UTC.",
        ),
        (
            "activation_ended",
            {"state": "approval_expired", "reason": "no decision in time"},
            "The membership of grp-ops of alice has ended (approval expired).",
        ),
        (
            "assignment_eligible",
            {"kind": "eligible", "ends_at": "2027-11-28T13:00:00Z"},
            "alice is now eligible for membership of grp-ops until 2027-11-28 13:00 UTC.",
        ),
        ("assignment_active", {}, "alice now has an active assignment for membership of grp-ops."),
        (
            "assignment_expiring_soon",
            {"kind": "eligible", "ends_at": "2026-12-01T09:30:15Z"},
            "The eligible assignment of alice for membership of grp-ops ends at 2026-12-01 09:30:15 UTC.",
        ),
        ("assignment_ended", {"kind": "active"}, "The active assignment of alice for membership of grp-ops has ended."),
    ],
)
def test_other_events_get_a_short_clear_message(event, details, expected):
    n = approval_request(
        event=event,
        details=details,
        actions=[],
        subject=event.replace("_", " "),
        recipients=[Recipient(principal_id="alice", role="requestor")],
    )
    _, body = render_text(n)
    assert body.splitlines()[0] == expected
    assert "your decision" not in body and "pim approve" not in body
    assert f"details: pim status {REQUEST_ID}" in body
    for key, value in details.items():
        assert any(value.replace("_", " ") in v or v.startswith(value[:10]) for _, v in facts(n)), key


def test_every_event_renders_and_the_requestor_is_not_asked_to_decide():
    for event in EVENTS:
        title, body = render_text(
            approval_request(event=event, actions=[], recipients=[Recipient(principal_id="alice", role="requestor")])
        )
        assert title.startswith("[PIM] ") and body.strip()
    _, body = render_text(approval_request(actions=[], recipients=[Recipient(principal_id="alice", role="requestor")]))
    assert body.startswith("alice asked for membership of grp-ops for 2 h (PT2H); it is waiting for approval.")


def test_an_unknown_event_falls_back_to_its_subject_and_actions_are_offered():
    n = Notification(
        key="k", event="something_new", at=datetime(2026, 1, 1, tzinfo=UTC), subject="Something\nnew", actions=["pim status X"]
    )
    title, body = render_text(n)
    assert title == "[PIM] Something new"  # one line: a subject becomes a mail header
    assert body.startswith("Something new\n") and "What you can do next:\n\n    pim status X" in body
    assert subject(Notification(key="k", event="e", at=n.at, subject="[PIM] done")) == "[PIM] done"


def test_slack_body_has_the_facts_and_the_commands_in_a_code_block():
    body = render_slack(approval_request(details={"justification": "fix <prod> & db", "duration": "PT2H"}))
    assert set(body) == {"text", "blocks"} and "your decision is needed" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "section" and types[-1] == "context"
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert "*Justification*\nfix &lt;prod&gt; &amp; db" in fields  # Slack would read <prod> as a link
    assert "*Request*\nactivation/grp-ops/member/alice" in fields
    code = next(b["text"]["text"] for b in body["blocks"] if "```" in b.get("text", {}).get("text", ""))
    assert f"```{APPROVE}\n{DENY}```" in code
    for block in body["blocks"]:
        assert len(block.get("fields", [])) <= 10


def test_slack_splits_many_facts_into_sections_of_ten():
    details = {f"fact_{i:02}": str(i) for i in range(15)}
    body = render_slack(approval_request(details=details, actions=[]))
    sections = [b for b in body["blocks"] if "fields" in b]
    assert [len(s["fields"]) for s in sections] == [10, 9]  # 4 fixed facts + 15 details
