"""Who may administer what: pure rules over directory roles and group ownership.

A role-assignable group is managed only by Global Administrators, Privileged
Role Administrators and the group's owners; other groups also by Groups
Administrators and User Administrators."""

from __future__ import annotations

from collections.abc import Iterable

GLOBAL_ADMIN = "Global Administrator"
PRIVILEGED_ROLE_ADMIN = "Privileged Role Administrator"
GROUPS_ADMIN = "Groups Administrator"
USER_ADMIN = "User Administrator"
ROLES = (GLOBAL_ADMIN, PRIVILEGED_ROLE_ADMIN, GROUPS_ADMIN, USER_ADMIN)

PRIVILEGED_ROLES = frozenset({GLOBAL_ADMIN, PRIVILEGED_ROLE_ADMIN})
GROUP_ROLES = PRIVILEGED_ROLES | {GROUPS_ADMIN, USER_ADMIN}


def roles_that_manage(role_assignable: bool) -> frozenset[str]:
    return PRIVILEGED_ROLES if role_assignable else GROUP_ROLES


def may_manage_group(roles: Iterable[str], *, is_owner: bool, role_assignable: bool) -> bool:
    return is_owner or bool(set(roles) & roles_that_manage(role_assignable))


def refuse_group_management(
    actor: str, roles: Iterable[str], *, is_owner: bool, group_id: str, role_assignable: bool
) -> str | None:
    if may_manage_group(roles, is_owner=is_owner, role_assignable=role_assignable):
        return None
    allowed = " or ".join(sorted(roles_that_manage(role_assignable))) + ", or an owner of the group"
    kind = "role-assignable group" if role_assignable else "group"
    return f"{actor} may not manage {kind} {group_id}: needs {allowed}"


def refuse_onboarding(actor: str, roles: Iterable[str], *, group_id: str, role_assignable: bool) -> str | None:
    """Enabling a group in PIM (or creating it) needs a role; ownership alone is not enough
    to bring a new group under management."""
    if set(roles) & roles_that_manage(role_assignable):
        return None
    allowed = " or ".join(sorted(roles_that_manage(role_assignable)))
    return f"{actor} may not onboard {group_id}: needs {allowed}"


def refuse_role_grant(actor: str, roles: Iterable[str], role: str) -> str | None:
    """Only Global and Privileged Role Administrators hand out directory roles."""
    if role not in ROLES:
        return f"role: unknown role {role!r} (known: {', '.join(ROLES)})"
    if set(roles) & PRIVILEGED_ROLES:
        return None
    return f"{actor} may not grant directory roles: needs {GLOBAL_ADMIN} or {PRIVILEGED_ROLE_ADMIN}"


def refuse_user_management(actor: str, roles: Iterable[str]) -> str | None:
    if set(roles) & (PRIVILEGED_ROLES | {USER_ADMIN}):
        return None
    return f"{actor} may not add users: needs {GLOBAL_ADMIN}, {PRIVILEGED_ROLE_ADMIN} or {USER_ADMIN}"


def refuse_mfa_enrolment(
    actor: str, roles: Iterable[str], principal_id: str, principal_roles: Iterable[str], *, own_factor_verified: bool
) -> str | None:
    """Who may (re)enrol a user's TOTP: a User Administrator or Global Administrator,
    or the user themselves proving their current factor. Resetting the factor of a
    Global or Privileged Role Administrator takes a Global Administrator: a User
    Administrator must not be able to take over a more privileged account."""
    roles = set(roles)
    if actor == principal_id and own_factor_verified:
        return None
    if set(principal_roles) & PRIVILEGED_ROLES:
        if GLOBAL_ADMIN in roles:
            return None
        return f"{actor} may not enrol {principal_id}'s MFA: {principal_id} is a privileged administrator; needs {GLOBAL_ADMIN}"
    if roles & {GLOBAL_ADMIN, USER_ADMIN}:
        return None
    if actor == principal_id:
        return f"{actor} may re-enrol only with their current code (--mfa-code)"
    return f"{actor} may not enrol {principal_id}'s MFA: needs {USER_ADMIN} or {GLOBAL_ADMIN}, or {principal_id} with their current code"
