"""`/admin/groups/{id}/policy/{member|owner}`: the policy editor. Each setting of the
policy (pim/domain/policy.py) is a labelled field; saving sends the settings that
changed, as KEY=VALUE, to PATCH /api/policies/{group}/{access}, which validates the
whole policy, authorizes and audits. A refusal is shown next to the field it names:
the API names a setting at the head of each problem (`activation.max_duration must
be between PT30M and PT24H`, `activation.approval[0]: no principal 'x'`).

The form carries the version it was read at: when the policy changed meanwhile,
nothing is sent and the page says so (the API itself takes no expected version)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from fastapi.responses import Response
from starlette.datastructures import FormData
from starlette.requests import Request

from pim.domain.durations import format_duration, parse_duration
from pim.domain.policy import NOTIFICATION_EVENTS
from pim.portal.admin_common import Access, GroupId, admin_page, administrator, field_errors
from pim.portal.backend import ApiError, backend
from pim.portal.pages import Viewer, flash, portal_router, redirect

router = portal_router()


@dataclass(frozen=True)
class Setting:
    key: str  # the policy's KEY, e.g. activation.max_duration; also the form field's name
    label: str
    kind: str  # duration | bool | int | text | choices | one_of | stages
    hint: str = ""
    options: tuple[tuple[str, str], ...] = ()  # (value, label), for choices and one_of
    optional: bool = False  # an empty field is null


def _assignment_settings(kind: str) -> tuple[Setting, ...]:
    prefix, plural = f"{kind}_assignment", f"{kind.capitalize()} assignments"
    return (
        Setting(f"{prefix}.allow_permanent", f"Allow permanent {kind} assignments", "bool"),
        Setting(f"{prefix}.max_duration", f"Maximum {kind} assignment duration", "duration", "At most P3660D, e.g. P365D."),
        Setting(f"{prefix}.require_justification", f"{plural} require a justification", "bool"),
        Setting(f"{prefix}.require_mfa", f"{plural} require the administrator's MFA", "bool"),
    )


SECTIONS: tuple[tuple[str, tuple[Setting, ...]], ...] = (
    (
        "Activation",
        (
            Setting("activation.max_duration", "Maximum activation duration", "duration", "PT30M to PT24H, e.g. 8h or PT8H."),
            Setting("activation.min_duration", "Minimum activation duration", "duration", "PT5M up to the maximum."),
            Setting("activation.require_mfa", "Activation requires MFA", "bool"),
            Setting(
                "activation.mfa_methods",
                "MFA methods accepted",
                "choices",
                options=(("totp", "A TOTP code"), ("oidc", "A multi-factor sign-in")),
            ),
            Setting(
                "activation.mfa_auth_context",
                "Authentication context (acr)",
                "text",
                "Empty: the sign-in must be multi-factor (amr holds mfa).",
                optional=True,
            ),
            Setting("activation.mfa_max_auth_age", "Maximum age of the sign-in", "duration", "PT1M to PT1H."),
            Setting("activation.require_justification", "Activation requires a justification", "bool"),
            Setting("activation.justification_min_length", "Minimum justification length", "int", "0 to 500 characters."),
            Setting("activation.require_ticket", "Activation requires a ticket", "bool"),
            Setting("activation.ticket_pattern", "Ticket pattern", "text", "A regular expression; empty: any.", optional=True),
            Setting(
                "activation.approval",
                "Approval stages",
                "stages",
                "One stage per line: how many must approve, then the approvers, e.g. “2 of bob, carol”. "
                "role:Global Administrator stands for everyone holding the role. Empty: no approval.",
            ),
            Setting("activation.approval_timeout", "Approval timeout", "duration", "PT5M to P30D."),
            Setting("activation.approver_justification_required", "Approvers must give a justification", "bool"),
            Setting(
                "activation.max_total_duration",
                "Maximum total duration with extensions",
                "duration",
                "Up to P7D. Empty: twice the maximum activation duration.",
                optional=True,
            ),
            Setting("activation.max_extensions", "Maximum extensions", "int", "0 to 50."),
        ),
    ),
    ("Eligible assignments", _assignment_settings("eligible")),
    ("Active assignments", _assignment_settings("active")),
    (
        "Notifications",
        (
            Setting(
                "notifications.recipients",
                "Who is told",
                "choices",
                options=(("admins", "Administrators"), ("requestor", "The requester"), ("approvers", "The approvers")),
            ),
            Setting(
                "notifications.channels",
                "Channels",
                "choices",
                options=(("log", "Log"), ("email", "E-mail"), ("webhook", "Webhook")),
            ),
            Setting(
                "notifications.events", "Events", "choices", options=tuple((e, e.replace("_", " ")) for e in NOTIFICATION_EVENTS)
            ),
        ),
    ),
    (
        "Access without a source",
        (
            Setting(
                "unsourced_access",
                "Membership that no assignment or activation gives",
                "one_of",
                options=(("revoke", "Take it away"), ("report", "Only report it")),
            ),
        ),
    ),
)
SETTINGS = tuple(setting for _, settings in SECTIONS for setting in settings)
TARGETS = {**{s.key: s.key for s in SETTINGS}, "mfa": "mfa_code", "mfa_code": "mfa_code"}
STAGE = re.compile(r"^\s*(\d+)\s+of\s+(.*)$", re.IGNORECASE)


# --- the policy as form values, and back --------------------------------------------------------


def lookup(policy: dict[str, Any], key: str) -> Any:
    node: Any = policy
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def form_of(policy: dict[str, Any]) -> dict[str, Any]:
    """What the fields show: text for text fields, "true" or "" for checkboxes, lists for choices."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = lookup(policy, setting.key)
        if setting.kind == "bool":
            values[setting.key] = "true" if value else ""
        elif setting.kind == "choices":
            values[setting.key] = list(value or [])
        elif setting.kind == "stages":
            values[setting.key] = "\n".join(f"{s['required']} of {', '.join(s['approvers'])}" for s in value or [])
        else:
            values[setting.key] = "" if value is None else str(value)
    return values


def read_form(form: FormData) -> dict[str, Any]:
    """The posted form in the shape of `form_of`."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.kind == "choices":
            values[setting.key] = [str(v) for v in form.getlist(setting.key)]
        elif setting.kind == "bool":
            values[setting.key] = "true" if form.get(setting.key) == "true" else ""
        else:
            values[setting.key] = str(form.get(setting.key) or "").strip()
    values["mfa_code"] = str(form.get("mfa_code") or "").strip()
    values["version"] = str(form.get("version") or "")
    return values


def parse(setting: Setting, shown: Any) -> Any:
    """The JSON value of a field. What cannot be read goes to the API as typed, which
    refuses it naming the setting."""
    if setting.optional and shown == "":
        return None
    if setting.kind == "duration":
        try:
            return format_duration(parse_duration(shown))
        except ValueError:
            return shown
    if setting.kind == "int":
        try:
            return int(shown)
        except ValueError:
            return shown
    if setting.kind == "bool":
        return shown == "true"
    if setting.kind == "choices":
        return [value for value, _ in setting.options if value in shown]
    if setting.kind == "stages":
        return [_stage(line) for line in shown.splitlines() if line.strip()]
    return shown


def _stage(line: str) -> dict[str, Any]:
    match = STAGE.match(line)
    required, names = (int(match[1]), match[2]) if match else (1, line)
    return {"approvers": [name.strip() for name in names.split(",") if name.strip()], "required": required}


def changed_settings(values: dict[str, Any], policy: dict[str, Any]) -> list[str]:
    """KEY=VALUE (VALUE as JSON) for each setting whose field differs from the policy."""
    out = []
    for setting in SETTINGS:
        new, old = parse(setting, values[setting.key]), lookup(policy, setting.key)
        if new == old or (setting.kind == "choices" and isinstance(old, list) and set(new) == set(old)):
            continue
        out.append(f"{setting.key}={json.dumps(new)}")
    return out


# --- the pages ----------------------------------------------------------------------------------


def _page(
    request: Request, viewer: Viewer, view: dict[str, Any], values: dict[str, Any], errors: dict[str, str], ask_mfa: bool = False
) -> Response:
    group_id, access = view["group_id"], view["access"]
    return admin_page(
        request,
        "admin/policy.html",
        viewer,
        status=400 if errors else 200,
        title=f"{access.capitalize()} policy of {group_id}",
        group_id=group_id,
        access=access,
        version=view["version"],
        policy_sections=SECTIONS,
        values=values,
        errors=errors,
        ask_mfa=ask_mfa or "mfa_code" in errors or bool(values.get("mfa_code")),
    )


@router.get("/admin/groups/{group_id}/policy/{access}")
async def policy_page(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    view = await backend(request, viewer).get(f"/api/policies/{group_id}/{access}")
    return _page(request, viewer, view, form_of(view["policy"]), {})


@router.post("/admin/groups/{group_id}/policy/{access}")
async def save_policy(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    api = backend(request, viewer)
    values = read_form(await request.form())
    view = await api.get(f"/api/policies/{group_id}/{access}")
    if values["version"] != str(view["version"]):
        stale = f"The policy changed since this page was opened (version {view['version']} now): check the values and save again."
        return _page(request, viewer, view, values, {"": stale})
    changes = changed_settings(values, view["policy"])
    if not changes:
        flash(request, "Nothing changed.")
        return redirect(f"/admin/groups/{group_id}/policy/{access}")
    try:
        saved = await api.patch(
            f"/api/policies/{group_id}/{access}", json={"settings": changes, "mfa_code": values["mfa_code"] or None}
        )
    except ApiError as refused:
        errors = field_errors(refused, TARGETS)
        if "" not in errors:
            errors[""] = "Nothing was saved: the reasons are next to the settings they name."
        return _page(request, viewer, view, values, errors, ask_mfa=any(c.startswith("mfa_") for c in refused.codes))
    count = len(changes)
    flash(
        request,
        f"Saved the {access} policy of {group_id}: {count} setting{'' if count == 1 else 's'} changed, version {saved['version']}.",
    )
    return redirect(f"/admin/groups/{group_id}/policy/{access}")
