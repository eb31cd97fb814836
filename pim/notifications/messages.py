"""What a notification says: pure functions from a `Notification` to a message.

`render_text` gives (subject, plain-text body) for email and anything that
wants text; `render_slack` gives a Slack-compatible body (`text` + `blocks`).
An approver of a new request gets every fact needed to decide and the exact
commands from `notification.actions`, verbatim; other events get a short line
and the facts that are present. Given the portal's base URL (PIM_PORTAL_URL),
both link to the request's own page, {portal}/requests/{api_request_id}.

The `details` keys read here (all optional, values are strings): state,
reason, duration (ISO 8601), justification, ticket, approval_deadline,
starts_at, granted_at, expires_at, ended_at, ends_at, locked_until (ISO 8601 instants),
approver, approver_justification, approvers, stage, assignment_id, kind, by.
Other keys are shown as they come, except those named like a secret.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta

from pim.domain.durations import describe_duration, parse_iso_duration
from pim.notifications.model import Notification, request_link

BRAND = "PIM for Groups"

# Known facts, in the order a reader needs them; the label is what the message shows.
_LABELS: dict[str, str] = {
    "state": "State",
    "reason": "Reason",
    "duration": "Duration",
    "justification": "Justification",
    "ticket": "Ticket",
    "approval_deadline": "Decide before",
    "starts_at": "Starts at",
    "granted_at": "Granted at",
    "expires_at": "Expires at",
    "ended_at": "Ended at",
    "ends_at": "Ends at",
    "approver": "Approver",
    "approver_justification": "Approver's justification",
    "approvers": "Approvers",
    "stage": "Approval stage",
    "assignment_id": "Assignment",
    "kind": "Assignment kind",
    "by": "By",
    "locked_until": "Locked until",
}

# Notifications carry no secrets, but `details` is open-ended: a key named like
# one of these is never shown, whatever its value (defence in depth).
_SECRET_PARTS = frozenset({"code", "mfa", "otp", "totp", "pin", "key", "auth", "session", "seal"})
_SECRET_SUBSTRINGS = (
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "apikey",
    "cookie",
    "signature",
    "authorization",
    "private",
)

_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if any(s in lowered for s in _SECRET_SUBSTRINGS):
        return True
    # Short words match whole parts only, so "footprint" is not an "otp".
    return any(part in _SECRET_PARTS for part in re.split(r"[^a-z0-9]+", lowered))


def approval_commands(request_id: str, approver_id: str) -> list[str]:
    """The approve and deny commands for one approver, quoted for a POSIX shell
    (a helper for whoever builds `notification.actions`)."""
    target = f"{shlex.quote(request_id)} --as {shlex.quote(approver_id)}"
    return [f'pim approve {target} --justification "..."', f'pim deny {target} --justification "..."']


def is_approval_request(notification: Notification) -> bool:
    return notification.event == "activation_requested" and (
        any(r.role == "approvers" for r in notification.recipients)
        or any(a.startswith(("pim approve", "pim deny")) for a in notification.actions)
    )


def subject(notification: Notification) -> str:
    # Header values must be one line: a newline in a subject would let text inject headers.
    text = " ".join(notification.subject.split()) or notification.event.replace("_", " ")
    return text if text.startswith("[PIM]") else f"[PIM] {text}"


def headline(notification: Notification) -> str:
    """One sentence that says what happened."""
    n, d = notification, notification.details
    who = n.principal_id or "someone"
    what = _what(n)
    duration = _duration(d["duration"]) if d.get("duration") else None
    approver = d.get("approver") or d.get("by")
    kind = f"{d['kind']} " if d.get("kind") else ""
    match n.event:
        case "activation_requested" if is_approval_request(n):
            return f"{who} asks for {what}" + (f" for {duration}" if duration else "") + ": your decision is needed."
        case "activation_requested":
            return f"{who} asked for {what}" + (f" for {duration}" if duration else "") + "; it is waiting for approval."
        case "request_approved":
            return f"The request of {who} for {what} was approved" + (f" by {approver}." if approver else ".")
        case "request_denied":
            return f"The request of {who} for {what} was denied" + (f" by {approver}." if approver else ".")
        case "activation_active":
            until = f" until {_instant(d['expires_at'])}" if d.get("expires_at") else ""
            return f"{who} now holds {what}{until}."
        case "activation_ended":
            state = d.get("state", "").replace("_", " ")
            return f"The {what} of {who} has ended" + (f" ({state})." if state else ".")
        case "assignment_eligible":
            return f"{who} is now eligible for {what}" + _until(d) + "."
        case "assignment_active":
            return f"{who} now has an active assignment for {what}" + _until(d) + "."
        case "assignment_expiring_soon":
            ends = f" ends at {_instant(d['ends_at'])}" if d.get("ends_at") else " ends soon"
            return f"The {kind}assignment of {who} for {what}{ends}."
        case "assignment_ended":
            return f"The {kind}assignment of {who} for {what} has ended."
        case "mfa_locked":
            until = f" until {_instant(d['locked_until'])}" if d.get("locked_until") else ""
            return f"The MFA of {who} is locked{until}, after too many wrong codes in a row."
    return " ".join(n.subject.split()) or n.event.replace("_", " ")


def facts(notification: Notification) -> list[tuple[str, str]]:
    """(label, value) pairs for the body: who, what, then the details, secrets left out."""
    n = notification
    rows: list[tuple[str, str]] = []
    if n.request_id:
        rows.append(("Request", n.request_id))
    if n.principal_id:
        rows.append(("Requested by" if n.event == "activation_requested" else "Principal", n.principal_id))
    if n.group_id:
        rows.append(("Group", n.group_id))
    if n.access:
        rows.append(("Access", {"member": "member (membership)", "owner": "owner (ownership)"}.get(n.access, n.access)))
    known = [k for k in _LABELS if n.details.get(k)]
    unknown = sorted(k for k, v in n.details.items() if k not in _LABELS and v and not is_secret_key(k))
    for key in known + unknown:
        rows.append((_LABELS.get(key) or key.replace("_", " ").capitalize(), _value(key, n.details[key])))
    return rows


def render_text(notification: Notification, portal_url: str | None = None) -> tuple[str, str]:
    """(subject, plain-text body). With `portal_url` (PIM_PORTAL_URL), the body links
    to the request's page in the portal."""
    n = notification
    lines = [headline(n), ""]
    rows = facts(n)
    width = max((len(label) for label, _ in rows), default=0) + 1
    # Continuation lines of a multi-line value line up under its first line.
    lines += [f"{label + ':':<{width}} " + value.replace("\n", "\n" + " " * (width + 1)) for label, value in rows]
    link = request_link(portal_url, n)
    if link:
        lines += ["", _link_intro(n) + ":", "", f"    {link}"]
    if n.actions:
        lines += ["", _actions_intro(n, linked=link is not None), ""]
        lines += [f"    {action}" for action in n.actions]  # indented, verbatim: copy and paste
    if is_approval_request(n):
        deadline = n.details.get("approval_deadline")
        lines += [
            "",
            "Nobody may approve their own request. "
            + (f"Without a decision by {_instant(deadline)}, the request expires." if deadline else ""),
        ]
    lines += ["", "--", _footer(n)]
    return subject(n), "\n".join(line.rstrip() for line in lines) + "\n"


def render_slack(notification: Notification, portal_url: str | None = None) -> dict:
    """A body for Slack (incoming webhook or chat.postMessage): `text` is the
    fallback shown in notifications, `blocks` the message itself. With `portal_url`,
    a link to the request's page in the portal."""
    n = notification
    title = _slack_escape(headline(n))
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*", 3000)}}]
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{_slack_escape(label)}*\n{_slack_escape(value)}", 2000)} for label, value in facts(n)
    ]
    for start in range(0, len(fields), 10):  # Slack allows ten fields per section
        blocks.append({"type": "section", "fields": fields[start : start + 10]})
    link = request_link(portal_url, n)
    if link:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{_slack_escape(link)}|{_link_intro(n)}>"}})
    if n.actions:
        commands = "\n".join(n.actions)
        # Fences cannot be escaped inside a code block: drop them rather than break the block.
        code = _cut(_slack_escape(commands.replace("```", "'''")), 2800)
        intro = _slack_escape(_actions_intro(n, linked=link is not None))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{intro}\n```{code}```"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_slack_escape(_footer(n)), 3000)}]})
    return {"text": _cut(f"{_slack_escape(subject(n))}: {title}", 3000), "blocks": blocks}


# --- helpers ------------------------------------------------------------------


def _what(n: Notification) -> str:
    group = n.group_id or "a group"
    return {"member": f"membership of {group}", "owner": f"ownership of {group}"}.get(n.access or "", f"access to {group}")


def _until(details: dict[str, str]) -> str:
    return f" until {_instant(details['ends_at'])}" if details.get("ends_at") else ""


def _actions_intro(n: Notification, linked: bool = False) -> str:
    if is_approval_request(n):
        return ("Or run" if linked else "To decide, run") + " one of these commands, with your own justification:"
    return "What you can do next:"


def _link_intro(n: Notification) -> str:
    return "Decide in the portal" if is_approval_request(n) else "See the request in the portal"


def _footer(n: Notification) -> str:
    parts = [BRAND, f"event {n.event}", f"at {_instant(n.at.isoformat())}"]
    if n.request_id:
        parts.append(f"details: pim status {shlex.quote(n.request_id)}")
    return " · ".join(parts)


def _value(key: str, value: str) -> str:
    if key == "justification":
        return value.strip()  # the requester's own words, line breaks included
    if key == "state":
        return value.replace("_", " ")  # pending_approval -> pending approval
    if key == "duration" or key.endswith("_duration"):
        return _duration(value)
    if _ISO_INSTANT.match(value):
        return _instant(value)
    return " ".join(value.split())


def _instant(text: str) -> str:
    """An ISO 8601 instant as people read it, in UTC; anything else as given."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if value.tzinfo is None:
        return text
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if value.second else "%Y-%m-%d %H:%M UTC")


def _duration(text: str) -> str:
    """`PT1H30M` -> `1 h 30 min (PT1H30M)`; keeps the ISO form, which the CLI accepts back."""
    value = parse_iso_duration(text)
    if value is None or value <= timedelta(0):
        return text
    return f"{describe_duration(value)} ({text.strip()})"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions: only these three characters need escaping.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
