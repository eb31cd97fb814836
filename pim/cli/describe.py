"""What `pim status` (and `request --wait`, `approve`, `cancel`...) prints for a
request: its `ActivationStatus` as JSON (`model_dump(mode="json")`, or the
`status` query's answer as it came) made into lines for people. Plain Python,
so that the quick path of `pim status` (pim/cli/quick.py) prints it without
loading pydantic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

# A decision as a past participle: "bob approved", "bob denied".
DECIDED = {"approve": "approved", "deny": "denied"}


def describe_status(status: Mapping[str, Any]) -> str:
    lines = [f"{status['request_id']}: {status['state']}"]
    if status.get("group_id"):
        lines.append(f"  {status.get('access') or '?'} of {status['group_id']} for {status.get('principal_id')}")
    if status.get("requested_duration"):
        lines.append(f"  duration: {status['requested_duration']}")
    for index, stage in enumerate(status.get("stages") or [], start=1):
        decisions = stage.get("decisions") or []
        approvals = sum(1 for d in decisions if d["decision"] == "approve")
        decided = ", ".join(f"{d['approver_id']} {DECIDED.get(d['decision'], d['decision'])}" for d in decisions)
        lines.append(
            f"  stage {index}: {approvals}/{stage['required']} approvals from {', '.join(stage['approvers'])} "
            f"({decided or 'no decision yet'})"
        )
    if status.get("approval_deadline") and status["state"] == "pending_approval":
        lines.append(f"  approval deadline: {_instant(status['approval_deadline'])}")
    for label, key in (
        ("starts at", "starts_at"),
        ("granted at", "granted_at"),
        ("expires at", "expires_at"),
        ("ended at", "ended_at"),
    ):
        if status.get(key):
            lines.append(f"  {label}: {_instant(status[key])}")
    if status.get("end_reason"):
        lines.append(f"  reason: {status['end_reason']}")
    for violation in status.get("violations") or []:
        lines.append(f"  violation {violation['code']}: {violation['message']}")
    return "\n".join(lines)


def _instant(text: str) -> str:
    """An instant as Python writes it (`+00:00`, not JSON's `Z`)."""
    return datetime.fromisoformat(text).isoformat()
