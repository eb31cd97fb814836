"""What the administration pages (`/admin...`, the admin_*.py modules) share: who may
open them, the path parameters they take, the groups' facts, and reading the API's
refusals into the fields of a form.

The pages are for administrators: a viewer holding any directory role (the API's
own rule, `Caller.is_admin`). Anyone else gets a "Not allowed" page before any call.
That check only spares people pages they cannot use: every change goes through the
API, which authorizes it again (a Groups Administrator, for example, cannot manage a
role-assignable group, and the API says so)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Path
from fastapi.responses import Response
from starlette.requests import Request

from pim.domain import authorization as authz
from pim.domain.models import ID_PATTERN
from pim.portal.backend import ApiError, Backend
from pim.portal.pages import Viewer, render, signed_in

GroupId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
AssignmentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Access = Literal["member", "owner"]
ACCESSES: tuple[Access, ...] = ("member", "owner")
# The administration's own navigation: (label, path); the current one is marked.
SECTIONS = (("Groups", "/admin"), ("Audit", "/admin/audit"), ("Reconcile status", "/admin/reconcile"))


def not_an_administrator(viewer: Viewer) -> ApiError:
    roles = ", ".join(sorted(authz.GROUP_ROLES))
    return ApiError(
        403,
        "Authorization_RequestDenied",
        f"Administration is for administrators ({roles}); {viewer.principal_id} holds none of these roles. "
        "If you were given one since you signed in, sign out and sign in again.",
    )


async def administrator(viewer: Viewer = Depends(signed_in)) -> Viewer:
    """The page's dependency: the signed-in viewer, if an administrator; otherwise the
    "Not allowed" page (pages.api_refused answers the ApiError)."""
    if not viewer.is_admin:
        raise not_an_administrator(viewer)
    return viewer


def admin_page(request: Request, template: str, viewer: Viewer, status: int = 200, **context: Any) -> Response:
    """An administration page: `render`, with the administration's navigation."""
    return render(request, template, viewer, status=status, sections=SECTIONS, **context)


async def group_of(api: Backend, group_id: str) -> dict[str, Any]:
    """The group's row of GET /api/groups; a "Not found" page when there is none."""
    for group in await api.get("/api/groups"):
        if group["id"] == group_id:
            return dict(group)
    raise ApiError(404, "ResourceNotFound", f"There is no group {group_id}.")


def utc_instant(text: str) -> str:
    """An instant typed in a form (a datetime-local `2026-12-24T08:00`, a date, or ISO 8601
    with a zone), as ISO 8601 with a zone; without one, it is UTC. ValueError otherwise."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("a date and time, e.g. 2026-12-24T08:00 (UTC)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


# --- refusals, field by field -------------------------------------------------------------------


def field_errors(error: ApiError, targets: dict[str, str]) -> dict[str, str]:
    """The refusal's messages by form field. `targets` maps the API's names of fields
    (a detail's `target`, or the head of a message: `duration: ...`,
    `activation.max_duration must ...`, `--kind: ...`) to the form's; what names no
    field goes under "" (above the form). A message that joins several problems with
    "; " is split, each shown at its own field."""
    out: dict[str, list[str]] = {}
    for detail in error.details or [{"message": error.message}]:
        message = str(detail.get("message") or error.message)
        target = detail.get("target")
        if target and str(target) in targets:
            out.setdefault(targets[str(target)], []).append(_text_after(message, str(target)))
            continue
        for form_field, text in split_message(message, targets):
            out.setdefault(form_field, []).append(text)
    return {name: "; ".join(texts) for name, texts in out.items()}


def split_message(message: str, targets: dict[str, str]) -> list[tuple[str, str]]:
    """`a: x; b must y; z` -> [(field of a, "x"), (field of b, "b must y; z")]: a part
    starts a new problem only when it names a known field (or is the first)."""
    parts: list[tuple[str, str]] = []
    for segment in message.split("; "):
        named = _named_field(segment, targets)
        if named is None and parts:
            form_field, text = parts[-1]
            parts[-1] = (form_field, f"{text}; {segment}")
        else:
            name = named or ""
            parts.append((targets.get(name, ""), _text_after(segment, name) if name else segment))
    return parts


def _named_field(segment: str, targets: dict[str, str]) -> str | None:
    """The longest API name of a field that `segment` starts with, followed by `:`, a
    blank, `[` or `.` (`activation.approval[0]: ...`, `activation.approval.0.required: ...`)."""
    for name in sorted(targets, key=len, reverse=True):
        if segment.startswith(name) and segment[len(name) : len(name) + 1] in (":", " ", "[", "."):
            return name
    return None


def _text_after(message: str, name: str) -> str:
    """`duration: too long` at its field reads `too long`; other messages stay whole."""
    head, sep, rest = message.partition(": ")
    return rest if sep and head == name else message
