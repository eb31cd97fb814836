"""Users and directory roles, and the first administrator of an empty tenant."""

from __future__ import annotations

from datetime import UTC, datetime

from pim.domain import authorization as authz
from pim.identity import totp as mfa
from pim.identity.totp_check import AttemptScope, verify_totp
from pim.notifications.model import Notification, Recipient
from pim.operations.context import AdminContext, Refused, valid_email, valid_id
from pim.store import Store


async def bootstrap(store: Store, admin_id: str, display_name: str = "") -> str:
    """Create the first Global Administrator of an empty tenant, enrolled for TOTP;
    returns the TOTP secret. Refused once a Global Administrator exists."""
    valid_id(admin_id)
    if await store.holders_of((authz.GLOBAL_ADMIN,)):
        raise Refused("already_bootstrapped", "the tenant already has a Global Administrator")
    at = datetime.now(UTC)
    await store.add_principal(admin_id, "user", display_name, [authz.GLOBAL_ADMIN])
    secret = mfa.new_secret()
    await store.enroll_mfa(admin_id, secret, at)
    await store.append_audit(
        at=at, action="tenant_bootstrapped", actor=admin_id, principal_id=admin_id, details={"role": authz.GLOBAL_ADMIN}
    )
    return secret


# A service principal is what an application signs in as (client credentials, pim/api/auth.py).
PRINCIPAL_KINDS = ("user", "service")


async def add_user(ctx: AdminContext, user_id: str, display_name: str = "", email: str | None = None, kind: str = "user") -> None:
    """A user, or with `kind="service"` a service principal."""
    action = "add_user"
    await ctx.require_known_actor(action)
    reason = authz.refuse_user_management(ctx.actor, await ctx.roles())
    if reason:
        await ctx.refuse(action, "not_authorized", reason, principal_id=user_id)
    try:
        valid_id(user_id)
        valid_email(email)
    except Refused as refused:
        await ctx.refuse(action, refused.code, str(refused), principal_id=user_id)
    if kind not in PRINCIPAL_KINDS:
        await ctx.refuse(
            action, "invalid_kind", f"kind: {kind!r} is not one of {', '.join(PRINCIPAL_KINDS)}", principal_id=user_id
        )
    if await ctx.store.principal(user_id) is not None:
        await ctx.refuse(action, "principal_exists", f"id: {user_id!r} exists already", principal_id=user_id)
    await ctx.store.add_principal(user_id, kind, display_name, email=email)
    await ctx.audit("user_added" if kind == "user" else "service_principal_added", principal_id=user_id)


async def grant_role(ctx: AdminContext, principal_id: str, role: str) -> None:
    action = "grant_role"
    await ctx.require_known_actor(action)
    reason = authz.refuse_role_grant(ctx.actor, await ctx.roles(), role)
    if reason:
        await ctx.refuse(action, "not_authorized" if role in authz.ROLES else "unknown_role", reason, principal_id=principal_id)
    principal = await ctx.store.principal(principal_id)
    if principal is None or principal.kind not in PRINCIPAL_KINDS:
        await ctx.refuse(
            action, "principal_not_found", f"principal: no user or service principal {principal_id!r}", principal_id=principal_id
        )
    await ctx.store.grant_role(principal_id, role)
    await ctx.audit("role_granted", principal_id=principal_id, role=role)


async def enroll_mfa(ctx: AdminContext, principal_id: str, current_code: str | None = None) -> str:
    """(Re)enrol a user's TOTP; returns the new secret, for the user's authenticator.
    Audited, and the user is told (a reset they did not ask for is how a takeover shows)."""
    action = "enroll_mfa"
    await ctx.require_known_actor(action)
    principal = await ctx.store.principal(principal_id)
    if principal is None or principal.kind != "user":
        await ctx.refuse(action, "principal_not_found", f"principal: no user {principal_id!r}", principal_id=principal_id)
    own_factor = False
    if ctx.actor == principal_id and current_code:
        verdict = await verify_totp(
            ctx.store,
            principal_id,
            current_code,
            use_key=f"{action}:{ctx.now().isoformat()}",
            at=ctx.now(),
            scope=AttemptScope(action),
        )
        if not verdict.accepted:
            code, message = verdict.violations[0].code, verdict.violations[0].message
            if code != "mfa_locked":  # wrong or already used: one answer
                code, message = "mfa_invalid", "mfa: the current code is not valid"
            await ctx.refuse(action, code, message, principal_id=principal_id)
        own_factor = True
    reason = authz.refuse_mfa_enrolment(
        ctx.actor, await ctx.roles(), principal_id, await ctx.store.roles_of(principal_id), own_factor_verified=own_factor
    )
    if reason:
        await ctx.refuse(action, "not_authorized", reason, principal_id=principal_id)
    secret = mfa.new_secret()
    at = ctx.now()
    await ctx.store.enroll_mfa(principal_id, secret, at)
    notice = Notification(
        key=f"mfa_enrolled:{principal_id}:{at.isoformat()}",
        event="mfa_enrolled",
        at=at,
        subject=f"Your MFA was enrolled anew by {ctx.actor}",
        recipients=[
            Recipient(principal_id=principal_id, role="requestor", email=principal.email, display_name=principal.display_name)
        ],
        principal_id=principal_id,
        details={"by": ctx.actor, "state": "a new TOTP secret replaces the old one; if you did not ask for it, tell security"},
    )
    await ctx.store.append_audit(
        at=at,
        action="mfa_enrolled",
        actor=ctx.actor,
        principal_id=principal_id,
        details={"method": "totp", "by_own_factor": own_factor},
        notifications=[notice],
        channels=["log", "email"] if principal.email else ["log"],
    )
    return secret
