"""Administrative commands. Each builds an AdminContext for `--as` and calls one
operation of pim.operations, which checks, acts and audits."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Optional

import pyotp
import typer

from pim.cli.common import CliError, emit_json, open_store, parse_instant, run, settings
from pim.cli.directory import cli_directory
from pim.domain.durations import parse_duration
from pim.domain.models import AccessType
from pim.identity import totp as totp
from pim.operations import AdminContext
from pim.operations import assignments as assignment_ops
from pim.operations import groups as group_ops
from pim.operations import policies as policy_ops
from pim.operations import principals as principal_ops
from pim.runtime.temporal import connect_with

groups_app = typer.Typer(help="Groups: create, onboard into PIM, offboard, list.", no_args_is_help=True)
assignments_app = typer.Typer(help="Assignments: list, extend, renew.", no_args_is_help=True)
policy_app = typer.Typer(help="Activation and assignment policies.", no_args_is_help=True)
mfa_app = typer.Typer(help="TOTP enrolment.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the directory.", no_args_is_help=True)
roles_app = typer.Typer(help="Directory roles.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)

AS = typer.Option(..., "--as", help="the acting administrator")


def _access(owner: bool) -> AccessType:
    return AccessType.owner if owner else AccessType.member


def _now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def admin(actor: str, temporal: bool = False):
    """An AdminContext on the store; with `temporal`, also a Temporal client
    (needed by time-bound assignments; None when the server cannot be reached)."""
    config = settings()
    async with open_store() as store:
        client = None
        if temporal:
            try:
                client = await connect_with(config)
            except RuntimeError:
                client = None
        # Permanent active assignments and removals write to the directory the workers use.
        async with cli_directory(config, store) as directory:
            yield AdminContext(store, actor, temporal=client, task_queue=config.task_queue, directory=directory)


def _window(for_: Optional[str], until: Optional[str], permanent: bool | None) -> dict:
    """--for D, --until ISO or --permanent, as operation arguments."""
    given = [bool(for_), bool(until)] + ([permanent] if permanent is not None else [])
    if sum(given) != 1:
        raise CliError("give exactly one of --for, --until" + (" and --permanent" if permanent is not None else ""), 2)
    if for_:
        try:
            return {"duration": parse_duration(for_, "--for")}
        except ValueError as error:
            raise CliError(str(error), 2) from None
    if until:
        return {"ends_at": parse_instant(until, "--until")}
    return {}


# --- users, roles, bootstrap ------------------------------------------------


def bootstrap(
    admin_id: str = typer.Argument(..., help="id of the first Global Administrator"),
    name: str = typer.Option("", help="display name"),
) -> None:
    """Create the first Global Administrator of an empty tenant (once)."""

    async def go() -> None:
        async with open_store() as store:
            secret = await principal_ops.bootstrap(store, admin_id, name)
        typer.echo(f"{admin_id} is Global Administrator. Add this to an authenticator app:")
        typer.echo(pyotp.TOTP(secret).provisioning_uri(name=admin_id, issuer_name="PIM for Groups"))

    run(go)


@users_app.command("add")
def add_user(
    user: str = typer.Argument(...),
    name: str = typer.Option(""),
    email: Optional[str] = typer.Option(None, help="where email notifications go"),
    as_: str = AS,
) -> None:
    """Add a user to the directory."""

    async def go() -> None:
        async with admin(as_) as ctx:
            await principal_ops.add_user(ctx, user, name, email)
        typer.echo(f"user {user} added")

    run(go)


@roles_app.command("grant")
def grant_role(
    principal: str = typer.Argument(...), role: str = typer.Argument(..., help='e.g. "Groups Administrator"'), as_: str = AS
) -> None:
    """Give a user a directory role."""

    async def go() -> None:
        async with admin(as_) as ctx:
            await principal_ops.grant_role(ctx, principal, role)
        typer.echo(f"{principal} is now {role}")

    run(go)


# --- groups -----------------------------------------------------------------


def _group_command(name: str, operation, done: str, doc: str) -> None:
    @groups_app.command(name)
    def command(
        group: str = typer.Argument(...),
        kind: str = typer.Option(..., help="security | microsoft365 | dynamic | synced"),
        role_assignable: bool = typer.Option(False, "--role-assignable"),
        as_: str = AS,
    ) -> None:
        async def go() -> None:
            async with admin(as_) as ctx:
                await operation(
                    ctx, group, kind, role_assignable=role_assignable, max_role_assignable=settings().max_role_assignable_groups
                )
            typer.echo(f"{group} {done}")

        run(go)

    command.__doc__ = doc


_group_command(
    "create", group_ops.create_group, "created", "Create a group without enabling it in PIM (its members are plain, permanent)."
)
_group_command(
    "onboard",
    group_ops.onboard_group,
    "enabled in PIM",
    "Enable GROUP in PIM (creating it if unknown), with default member and owner policies.",
)


@groups_app.command("offboard")
def offboard(group: str = typer.Argument(...), as_: str = AS) -> None:
    """Take GROUP out of PIM: its eligible assignments end; refused while activations run."""

    async def go() -> None:
        async with admin(as_, temporal=True) as ctx:
            ended = await group_ops.offboard_group(ctx, group)
        typer.echo(f"{group} is no longer in PIM; eligible assignments ended: {', '.join(ended) or 'none'}")

    run(go)


@groups_app.command("list")
def list_groups(json_: bool = typer.Option(False, "--json")) -> None:
    """Every group, with kind and PIM status."""

    async def go() -> None:
        async with open_store() as store:
            rows = [
                dict(id=g.id, kind=g.kind, role_assignable=g.role_assignable, pim_enabled=g.pim_enabled)
                for g in await store.groups()
            ]
        if json_:
            emit_json(rows)
            return
        for r in rows:
            flags = [f for f, on in (("pim", r["pim_enabled"]), ("role-assignable", r["role_assignable"])) if on]
            typer.echo(f"{r['id']}\t{r['kind']}\t{','.join(flags) or '-'}")

    run(go)


# --- assignments ------------------------------------------------------------


def assign(
    group: str = typer.Argument(...),
    principal: str = typer.Argument(...),
    eligible: bool = typer.Option(False, "--eligible"),
    active: bool = typer.Option(False, "--active"),
    owner: bool = typer.Option(False, "--owner"),
    for_: Optional[str] = typer.Option(None, "--for", help="e.g. 30d"),
    until: Optional[str] = typer.Option(None, "--until", help="ISO 8601 with a zone"),
    permanent: bool = typer.Option(False, "--permanent"),
    justification: Optional[str] = typer.Option(None),
    mfa_code: Optional[str] = typer.Option(None, "--mfa-code", help="your code, when the policy requires MFA"),
    as_: str = AS,
) -> None:
    """Make PRINCIPAL eligible for (or actively hold) membership or ownership of GROUP; prints the assignment id."""
    if eligible == active:
        raise CliError("give exactly one of --eligible and --active", 2)
    window = _window(for_, until, permanent)

    async def go() -> None:
        async with admin(as_, temporal=bool(window)) as ctx:
            assignment_id = await assignment_ops.create_assignment(
                ctx,
                group,
                principal,
                access=_access(owner),
                kind="eligible" if eligible else "active",
                justification=justification,
                mfa_code=mfa_code,
                **window,
            )
        typer.echo(assignment_id)

    run(go)


def unassign(assignment_id: str = typer.Argument(...), reason: Optional[str] = typer.Option(None), as_: str = AS) -> None:
    """Remove an assignment (not in its first 5 minutes)."""

    async def go() -> None:
        async with admin(as_, temporal=True) as ctx:
            await assignment_ops.remove_assignment(ctx, assignment_id, reason)
        typer.echo(f"{assignment_id} removed")

    run(go)


@assignments_app.command("list")
def list_assignments(
    group: Optional[str] = typer.Option(None),
    principal: Optional[str] = typer.Option(None),
    all_: bool = typer.Option(False, "--all", help="also removed ones"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Assignments with their state (scheduled, active, expired, removed)."""

    async def go() -> None:
        at = _now()
        async with open_store() as store:
            rows = await store.assignments(group, principal, include_removed=all_)
        items = [
            dict(
                id=r.id,
                group_id=r.group_id,
                access=r.access,
                principal_id=r.principal_id,
                kind=r.kind,
                state=r.state(at),
                starts_at=r.starts_at.isoformat(),
                ends_at=r.ends_at.isoformat() if r.ends_at else None,
                created_by=r.created_by,
                justification=r.justification,
            )
            for r in rows
        ]
        if json_:
            emit_json(items)
            return
        for i in items:
            typer.echo(
                f"{i['id']}\t{i['kind']}\t{i['access']}\t{i['group_id']}\t{i['principal_id']}\t{i['state']}"
                f"\t{i['ends_at'] or 'permanent'}"
            )

    run(go)


def _window_command(name: str, operation, doc: str) -> None:
    @assignments_app.command(name)
    def change(
        assignment_id: str = typer.Argument(...),
        for_: Optional[str] = typer.Option(None, "--for"),
        until: Optional[str] = typer.Option(None, "--until"),
        justification: Optional[str] = typer.Option(None),
        as_: str = AS,
    ) -> None:
        window = _window(for_, until, None)
        arguments = {"new_end": window["ends_at"]} if "ends_at" in window else {"extra": window["duration"]}

        async def go() -> None:
            async with admin(as_, temporal=True) as ctx:
                new_end = await operation(ctx, assignment_id, justification=justification, **arguments)
            typer.echo(f"{assignment_id} now ends at {new_end.isoformat()}")

        run(go)

    change.__doc__ = doc


_window_command(
    "extend", assignment_ops.extend_assignment, "Move the end of a running assignment (--for is added to the current end)."
)
_window_command(
    "renew", assignment_ops.renew_assignment, "Renew an assignment that expired less than 30 days ago (--for counts from now)."
)


# --- policies ---------------------------------------------------------------


@policy_app.command("show")
def show_policy(group: str = typer.Argument(...), owner: bool = typer.Option(False, "--owner")) -> None:
    """Print the policy as JSON, with its version."""

    async def go() -> None:
        async with open_store() as store:
            found = await store.policy(group, _access(owner))
        if found is None:
            raise CliError(f"{group} is not enabled in PIM")
        policy, version = found
        emit_json(
            {"group_id": group, "access": _access(owner).value, "version": version, "policy": policy.model_dump(mode="json")}
        )

    run(go)


@policy_app.command("set")
def set_policy(
    group: str = typer.Argument(...),
    settings_: list[str] = typer.Argument(
        ..., metavar="KEY=VALUE...", help='e.g. activation.max_duration=PT4H activation.approval=\'[{"approvers":["bob"]}]\''
    ),
    owner: bool = typer.Option(False, "--owner"),
    as_: str = AS,
) -> None:
    """Change policy settings; running requests keep the version they started with."""

    async def go() -> None:
        async with admin(as_) as ctx:
            version = await policy_ops.set_policy(ctx, group, _access(owner), settings_)
        typer.echo(f"{group} {_access(owner).value} policy is now version {version}")

    run(go)


# --- views ------------------------------------------------------------------


def members(
    group: str = typer.Argument(...),
    owners: bool = typer.Option(False, "--owners"),
    eligible: bool = typer.Option(False, "--eligible", help="who may activate, and through what"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Who holds access to GROUP now, and where each access comes from (or, with --eligible, who may activate)."""

    async def go() -> None:
        access, at = _access(owners), _now()
        async with open_store() as store:
            if await store.group(group) is None:
                raise CliError(f"no group {group!r}")
            rows = await (_eligible_rows(store, group, access, at) if eligible else _member_rows(store, group, access, at))
        if json_:
            emit_json({"group_id": group, "access": access.value, "eligible" if eligible else "members": rows})
            return
        if not rows:
            typer.echo(f"nobody {'is eligible for' if eligible else 'holds'} {access.value} of {group}")
        for r in rows:
            typer.echo(f"{r['principal_id']}\t" + ", ".join(_describe_source(s) for s in r["sources"]))

    run(go)


async def _member_rows(store, group: str, access: AccessType, at: datetime) -> list[dict]:
    grants = await store.live_grants(group, access, at)
    rows = []
    for m in await store.memberships(group, access):
        sources = [
            dict(kind=g.source_kind, id=g.source_id.split("#")[0], ends_at=g.ends_at.isoformat() if g.ends_at else None)
            for g in grants
            if g.principal_id == m.principal_id
        ]
        rows.append(dict(principal_id=m.principal_id, since=m.since.isoformat(), sources=sources))
    return rows


async def _eligible_rows(store, group: str, access: AccessType, at: datetime) -> list[dict]:
    """Eligible principals; a group's active members appear each for themselves, through the group."""
    by_user: dict[str, list[dict]] = {}
    for a in await store.assignments(group):
        if a.kind != "eligible" or a.access != access.value or a.state(at) != "active":
            continue
        source = dict(kind="eligible", id=a.id, ends_at=a.ends_at.isoformat() if a.ends_at else None)
        principal = await store.principal(a.principal_id)
        if principal.kind == "group":
            for user in await store.active_members(a.principal_id, at):
                by_user.setdefault(user, []).append({**source, "via": a.principal_id})
        else:
            by_user.setdefault(a.principal_id, []).append(source)
    return [dict(principal_id=user, sources=sources) for user, sources in sorted(by_user.items())]


def _describe_source(source: dict) -> str:
    if source["kind"] == "activation":
        return f"activation {source['id']} (see `pim status` for its expiry)"
    label = f"{source['kind']} {source['id']}" + (f" through {source['via']}" if source.get("via") else "")
    return label + (f" until {source['ends_at']}" if source["ends_at"] else " (permanent)")


@mfa_app.command("enroll")
def enroll(principal: str = typer.Argument(...)) -> None:
    """Enrol PRINCIPAL for TOTP; prints the otpauth URI for an authenticator app."""

    async def go() -> None:
        async with open_store() as store:
            if await store.principal(principal) is None:
                raise CliError(f"no principal {principal!r}")
            secret = totp.new_secret()
            await store.enroll_mfa(principal, secret, _now())
        typer.echo(pyotp.TOTP(secret).provisioning_uri(name=principal, issuer_name="PIM for Groups"))

    run(go)


@mfa_app.command("code")
def code(principal: str = typer.Argument(...)) -> None:
    """Print PRINCIPAL's current TOTP code (development store only)."""
    if not settings().database_url.startswith("sqlite"):
        raise CliError("mfa code works only on the development (SQLite) store")

    async def go() -> None:
        async with open_store() as store:
            secret = await store.mfa_secret(principal)
        if secret is None:
            raise CliError(f"{principal} has no MFA enrolment")
        typer.echo(totp.current_code(secret))

    run(go)


def audit(
    group: Optional[str] = typer.Option(None),
    principal: Optional[str] = typer.Option(None),
    since: Optional[str] = typer.Option(None, help="ISO 8601 with a zone"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """The audit log, oldest first: time, action, actor, target and details (reason, old and new values)."""

    async def go() -> None:
        async with open_store() as store:
            rows = await store.audit(
                group_id=group, principal_id=principal, since=parse_instant(since, "--since") if since else None
            )
        items = [
            dict(
                at=r.at.isoformat(),
                action=r.action,
                actor=r.actor,
                request_id=r.request_id,
                group_id=r.group_id,
                access=r.access,
                principal_id=r.principal_id,
                details=r.details,
            )
            for r in rows
        ]
        if json_:
            emit_json(items)
            return
        for i in items:
            details = " ".join(f"{k}={v}" for k, v in i["details"].items() if v not in ("", None, [], {}))
            typer.echo(
                f"{i['at']}\t{i['action']}\t{i['actor'] or '-'}\t{i['group_id'] or '-'}\t{i['principal_id'] or '-'}\t{details}"
            )

    run(go)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to PIM_DATABASE_URL."""
    from pim.store.database import upgrade

    upgrade(settings().database_url)
    typer.echo("database is up to date")


def health(json_: bool = typer.Option(False, "--json")) -> None:
    """Check Temporal and the store (reachable, schema up to date); exit 1 when either fails."""
    from pim.runtime.health import check_all

    async def go() -> int:
        checks = await check_all(settings())
        if json_:
            emit_json([c.model_dump() for c in checks])
        else:
            for check in checks:
                typer.echo(f"{check.name}: {'ok' if check.ok else 'FAILING'} ({check.detail})")
        return 0 if all(c.ok for c in checks) else 1

    raise typer.Exit(run(go))


def reconcile(json_: bool = typer.Option(False, "--json")) -> None:
    """Run the reconciler now (it also runs on its schedule) and print what it found."""
    from pim.domain.reconcile import ReconcileReport
    from pim.runtime.temporal import connect_with as _connect

    async def go() -> None:
        config = settings()
        client = await _connect(config)
        report = await client.execute_workflow(
            "Reconcile",
            id=f"reconcile/manual-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}",
            task_queue=config.task_queue,
            result_type=ReconcileReport,
        )
        if json_:
            emit_json(report)
            return
        for label, findings in (("revoked", report.revoked), ("released", report.released), ("unsourced", report.unsourced)):
            for f in findings:
                typer.echo(f"{label}\t{f.access.value}\t{f.group_id}\t{f.principal_id}\t{f.source or '-'}\t{f.reason}")
        typer.echo(
            f"{len(report.revoked)} revoked, {len(report.released)} claims released, {len(report.unsourced)} without a source"
        )

    run(go)
