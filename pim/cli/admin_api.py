"""The administrative commands in API mode (pim/cli/remote.py): each is one call to a
native endpoint (docs/api.md), in the name of whoever signed in, and answers with
what the command prints in local mode (pim/cli/admin.py prints it, the same way
in both modes). The API checks, acts and audits, as the operations do locally."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pim.cli import remote
from pim.domain.durations import format_duration
from pim.domain.models import AccessType


def window_fields(window: dict[str, Any]) -> dict[str, Any]:
    """--for, --until or --permanent (pim/cli/admin.py `_window`) as the API's fields."""
    duration: timedelta | None = window.get("duration")
    ends_at: datetime | None = window.get("ends_at")
    if duration is not None:
        return {"duration": format_duration(duration)}
    if ends_at is not None:
        return {"ends_at": ends_at.isoformat()}
    return {"permanent": True}


async def add_user(user: str, name: str, email: str | None, kind: str) -> None:
    await remote.call("POST", "/api/users", json=remote.fields(id=user, name=name, email=email, kind=kind))


async def grant_role(principal: str, role: str) -> None:
    await remote.call("POST", f"/api/users/{remote.path_of(principal)}/roles", json={"role": role})


async def add_group(group: str, kind: str, role_assignable: bool, onboard: bool) -> None:
    body = {"id": group, "kind": kind, "role_assignable": role_assignable, "onboard": onboard}
    await remote.call("POST", "/api/groups", json=body)


async def offboard(group: str) -> list[str]:
    return list((await remote.call("POST", f"/api/groups/{remote.path_of(group)}/offboard"))["ended"])


async def assign(
    group: str,
    principal: str,
    *,
    access: AccessType,
    kind: str,
    justification: str | None,
    mfa_code: str | None,
    window: dict[str, Any],
) -> str:
    body = remote.fields(
        group_id=group, principal_id=principal, access=access.value, kind=kind, justification=justification, mfa_code=mfa_code
    )
    return str((await remote.call("POST", "/api/assignments", json=body | window_fields(window)))["assignment_id"])


async def unassign(assignment_id: str, reason: str | None) -> None:
    await remote.call("POST", f"/api/assignments/{remote.path_of(assignment_id)}/remove", json=remote.fields(reason=reason))


async def move_end(action: str, assignment_id: str, window: dict[str, Any], justification: str | None) -> str:
    """`extend` or `renew`; the new end as the command prints it (ISO 8601)."""
    body = window_fields(window) | remote.fields(justification=justification)
    return str((await remote.call("POST", f"/api/assignments/{remote.path_of(assignment_id)}/{action}", json=body))["ends_at"])


async def set_policy(group: str, access: AccessType, settings: list[str], mfa_code: str | None) -> int:
    body = remote.fields(settings=settings, mfa_code=mfa_code)
    path = f"/api/policies/{remote.path_of(group)}/{access.value}"
    return int((await remote.call("PATCH", path, json=body))["version"])


async def enroll(principal: str, mfa_code: str | None) -> str:
    body = remote.fields(principal_id=principal, mfa_code=mfa_code)
    return str((await remote.call("POST", "/api/mfa/enrollments", json=body))["otpauth_uri"])


# --- views: the JSON that `--json` prints -------------------------------------------------------


async def groups() -> Any:
    return await remote.call("GET", "/api/groups")


async def assignments(group: str | None, principal: str | None, all_: bool) -> Any:
    return await remote.call("GET", "/api/assignments", params={"group": group, "principal": principal, "all": all_ or None})


async def policy(group: str, access: AccessType) -> Any:
    return await remote.call("GET", f"/api/policies/{remote.path_of(group)}/{access.value}")


async def members(group: str, access: AccessType, eligible: bool) -> Any:
    params = {"access": access.value, "eligible": eligible or None}
    return await remote.call("GET", f"/api/groups/{remote.path_of(group)}/members", params=params)


async def audit(group: str | None, principal: str | None, since: datetime | None) -> Any:
    params = {"group": group, "principal": principal, "since": since.isoformat() if since else None}
    return await remote.call("GET", "/api/audit", params=params)


async def verify_audit(expected: tuple[int, str] | None) -> Any:
    params = {"expect": f"{expected[0]}:{expected[1]}" if expected else None}
    return await remote.call("GET", "/api/audit/verify", params=params)


async def health() -> Any:
    return await remote.call("GET", "/api/health")


async def reconcile() -> Any:
    return await remote.call("POST", "/api/reconcile")
