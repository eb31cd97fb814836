"""How the pages name a request's state: Graph's statuses (lists) and the activation's
own states (a request's page), as words, with a badge's look and whether it is over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pim.portal.formats import instant, span


@dataclass(frozen=True)
class Label:
    text: str
    look: str  # pending | active | ended | refused (the badge's CSS class)
    open: bool  # still going: the page keeps watching it


# The activation's states (pim/domain/models.State), for a request's own page.
STATES = {
    "validating": Label("Being checked", "pending", True),
    "pending_approval": Label("Pending approval", "pending", True),
    "scheduled": Label("Scheduled", "pending", True),
    "activating": Label("Activating", "pending", True),
    "active": Label("Active", "active", True),
    "revoking": Label("Ending", "pending", True),
    "expired": Label("Expired", "ended", False),
    "deactivated": Label("Deactivated", "ended", False),
    "denied": Label("Denied", "refused", False),
    "canceled": Label("Canceled", "ended", False),
    "approval_expired": Label("Approval expired", "ended", False),
    "rejected": Label("Refused", "refused", False),
    "failed": Label("Failed", "refused", False),
}

# Graph's statuses (pim/api/graph/activations.py), for the lists.
GRAPH = {
    "PendingScheduleCreation": STATES["validating"],
    "PendingApproval": STATES["pending_approval"],
    "ScheduleCreated": STATES["scheduled"],
    "Granted": STATES["activating"],
    "Provisioned": STATES["active"],
    "PendingRevocation": STATES["revoking"],
    "Revoked": Label("Ended", "ended", False),
    "Denied": STATES["denied"],
    "Canceled": STATES["canceled"],
    "Failed": STATES["rejected"],
}
UNKNOWN = Label("Unknown", "ended", False)
WAITING = ("PendingScheduleCreation", "PendingApproval")
SCHEDULED = ("ScheduleCreated",)
ACTIVE = ("Granted", "Provisioned", "PendingRevocation")


def state_label(state: str | None) -> Label:
    return STATES.get(state or "", UNKNOWN)


def graph_label(request: dict[str, Any]) -> Label:
    """A Graph request's label. Graph says Revoked for an expiry and an early end alike;
    the request ended at its planned end (start + duration) when it expired."""
    status = str(request.get("status"))
    if status != "Revoked":
        return GRAPH.get(status, UNKNOWN)
    end = planned_end(request)
    completed = instant(request.get("completedDateTime"))
    if end is not None and completed is not None and completed >= end - timedelta(seconds=1):
        return STATES["expired"]
    return STATES["deactivated"]


def planned_end(request: dict[str, Any]) -> Any:
    """start + duration of a Graph request's schedule, when it has both."""
    schedule = request.get("scheduleInfo") or {}
    start = instant(schedule.get("startDateTime"))
    duration = span((schedule.get("expiration") or {}).get("duration"))
    return start + duration if start is not None and duration is not None else None


def request_row(request: dict[str, Any]) -> dict[str, Any]:
    """What a list shows of a Graph request."""
    schedule = request.get("scheduleInfo") or {}
    label = graph_label(request)
    status = str(request.get("status"))
    return {
        "id": request.get("id"),
        "group": request.get("groupId"),
        "access": request.get("accessId"),
        "status": status,
        "label": label,
        "requested_at": request.get("createdDateTime"),
        "starts_at": schedule.get("startDateTime"),
        "duration": (schedule.get("expiration") or {}).get("duration"),
        "ends_at": planned_end(request) if status in ACTIVE else None,
        "completed_at": request.get("completedDateTime") if not label.open else None,
        "justification": request.get("justification"),
        "ticket": (request.get("ticketInfo") or {}).get("ticketNumber"),
        "cancellable": status in (*WAITING, *SCHEDULED),
    }
