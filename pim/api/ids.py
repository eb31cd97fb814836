"""Graph request ids: one activation run, written URL-safe.

An activation's workflow id (`activation/grp-ops/member/alice`) is reused by the
next activation of the same access, so a Graph request is the pair (workflow id,
run id), encoded base64url without padding. Anything that does not decode to such
a pair is not a request of ours (404).

An administrator's request (adminAssign, adminRemove, adminExtend, adminRenew) is
no workflow run: it is the audit line that the operation wrote, so its id is the
pair (assignment id, audit line id), `assignment/asg-...#42` written the same way."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WORKFLOW_ID = re.compile(r"activation/[A-Za-z0-9._@-]{1,128}/(member|owner)/[A-Za-z0-9._@-]{1,128}")
ASSIGNMENT_ID = re.compile(r"asg-[0-9a-f]{1,32}")
AUDIT_ID = re.compile(r"[1-9][0-9]{0,17}")
MAX_ENCODED = 512


@dataclass(frozen=True)
class RequestRef:
    workflow_id: str
    run_id: str

    @property
    def id(self) -> str:
        return _encoded(f"{self.workflow_id}#{self.run_id}")


@dataclass(frozen=True)
class AdminRequestRef:
    assignment_id: str
    audit_id: int

    @property
    def id(self) -> str:
        return _encoded(f"assignment/{self.assignment_id}#{self.audit_id}")


def _encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decoded(encoded: str) -> tuple[str, str] | None:
    """The two halves of `...#...`, from base64url without padding."""
    if not encoded or len(encoded) > MAX_ENCODED or not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    head, sep, tail = raw.partition("#")
    return (head, tail) if sep else None


def parse_request_id(encoded: str) -> RequestRef | None:
    halves = _decoded(encoded)
    if halves is None or not WORKFLOW_ID.fullmatch(halves[0]) or not RUN_ID.fullmatch(halves[1]):
        return None
    return RequestRef(*halves)


def parse_admin_request_id(encoded: str) -> AdminRequestRef | None:
    halves = _decoded(encoded)
    if halves is None:
        return None
    kind, _, assignment_id = halves[0].partition("/")
    if kind != "assignment" or not ASSIGNMENT_ID.fullmatch(assignment_id) or not AUDIT_ID.fullmatch(halves[1]):
        return None
    return AdminRequestRef(assignment_id, int(halves[1]))


def activation_schedule_id(ref: RequestRef) -> str:
    """The schedule (and instance) of a granted activation, as Graph writes such ids:
    `{groupId}_{accessId}_{request id}`."""
    _, group_id, access, _ = ref.workflow_id.split("/")
    return f"{group_id}_{access}_{ref.id}"


def parse_activation_schedule_id(text: str) -> RequestRef | None:
    """The activation of a schedule id; group ids may hold `_`, so every split is tried
    and the request id must name that group and access."""
    if len(text) > MAX_ENCODED + 300:
        return None
    for split in re.finditer(r"_(member|owner)_", text):
        ref = parse_request_id(text[split.end() :])
        if ref is not None and activation_schedule_id(ref) == text:
            return ref
    return None
