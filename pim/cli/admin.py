"""Administrative commands. Each builds an AdminContext for `--as` and calls one
operation of pim.operations, which checks, acts and audits; or, in API mode
(PIM_API_URL), asks the API to, as whoever signed in (pim/cli/admin_api.py), and
prints its answer the same way. `bootstrap`, `db` and `mfa code` are server-side:
they always act on the local store."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Literal, Optional

import typer

from pim.cli import admin_api, remote
from pim.cli.common import (
    CliError,
    TemporalUnreachable,
    async_command,
    mfa_code_option,
    open_store,
    parse_duration_option,
    parse_instant,
    settings,
    store_location,
    temporal_client,
)
from pim.cli.output import emit_json, print_table
from pim.domain.actors import Action
from pim.domain.models import AccessType

# Each command imports the operations it runs (pim/cli/app.py): `pim mfa code` and
# the listings load the store, not the operations, Temporal's client or a directory.
if TYPE_CHECKING:
    from pim.identity.actors import ProofPolicy
    from pim.identity.proofs import SigningKey
    from pim.operations import AdminContext
    from pim.runtime.settings import PimSettings
    from pim.store.views import GroupView, SourceView

groups_app = typer.Typer(help="Groups: create, onboard into PIM, offboard, list.", no_args_is_help=True)
assignments_app = typer.Typer(help="Assignments: list, extend, renew.", no_args_is_help=True)
policy_app = typer.Typer(help="Activation and assignment policies.", no_args_is_help=True)
mfa_app = typer.Typer(help="TOTP enrolment.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the directory.", no_args_is_help=True)
roles_app = typer.Typer(help="Directory roles.", no_args_is_help=True)
db_app = typer.Typer(
    help="The store's schema.\n\nServer-side: it acts here, on the local store, even with PIM_API_URL set.", no_args_is_help=True
)

AS = typer.Option(None, "--as", help="the acting administrator (local mode; in API mode, who signed in)")
JSON = typer.Option(False, "--json", help="print JSON instead of a table")


def _access(owner: bool) -> AccessType:
    return AccessType.owner if owner else AccessType.member


def _now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def admin(actor: str, temporal: bool = False) -> AsyncIterator[AdminContext]:
    """An AdminContext on the store; with `temporal`, also a Temporal client
    (needed by time-bound assignments; None when the server cannot be reached)."""
    from pim.cli.directory import cli_directory
    from pim.operations import AdminContext
    from pim.operations.context import ADMIN_TARGET, admin_payload

    config = settings()
    signer, proofs = local_front_end(config)
    async with open_store() as store:
        client = None
        if temporal:
            try:
                client = await temporal_client(config)
            except TemporalUnreachable:
                client = None
        # The actor is proven like any front end's (docs/security.md): signed here, checked by the operation.
        proof = signer.sign(actor=actor, action=Action.admin.value, target=ADMIN_TARGET, payload=admin_payload(actor))
        # Permanent active assignments and removals write to the directory the workers use.
        async with cli_directory(config, store) as directory:
            yield await AdminContext.proven(
                store, actor, proof, proofs, temporal=client, task_queue=config.task_queue, directory=directory, signer=signer
            )


def local_front_end(config: PimSettings) -> tuple[SigningKey, ProofPolicy]:
    """The local mode's signing key and the keys it is checked against: `pim dev`'s
    own (.pim/), or PIM_PROOF_SIGNING_KEY with PIM_PROOF_TRUSTED_KEYS."""
    from pim.identity.actors import configured_proof_policy
    from pim.identity.proofs import configured_signing_key, dev_trusted_key

    try:
        signer = configured_signing_key(config)
        if signer is None:
            raise CliError(
                "administrative commands act with the front end's signing key: run them where `pim dev` runs "
                "(its .pim/ directory), or set PIM_PROOF_SIGNING_KEY (docs/security.md)"
            )
        dev_key = dev_trusted_key()
        proofs = configured_proof_policy(config, also_trust=[dev_key] if dev_key else [])
    except ValueError as error:
        raise CliError(str(error), 2) from None
    return signer, proofs


def _window(for_: Optional[str], until: Optional[str], permanent: bool | None) -> dict[str, Any]:
    """--for D, --until ISO or --permanent, as operation arguments."""
    given = [bool(for_), bool(until)] + ([permanent] if permanent is not None else [])
    if sum(given) != 1:
        raise CliError("give exactly one of --for, --until" + (" and --permanent" if permanent is not None else ""), 2)
    if for_:
        return {"duration": parse_duration_option(for_, "--for")}
    if until:
        return {"ends_at": parse_instant(until, "--until")}
    return {}


# --- users, roles, bootstrap ------------------------------------------------


@async_command
async def bootstrap(
    admin_id: str = typer.Argument(..., help="id of the first Global Administrator"),
    name: str = typer.Option("", help="display name"),
) -> None:
    """Create the first Global Administrator of an empty tenant (once).

    Server-side: it acts here, on the local store, even with PIM_API_URL set."""
    import pyotp

    from pim.operations import principals as principal_ops

    async with open_store() as store:
        secret = await principal_ops.bootstrap(store, admin_id, name)
    typer.echo(f"{admin_id} is Global Administrator. Add this to an authenticator app:")
    typer.echo(pyotp.TOTP(secret).provisioning_uri(name=admin_id, issuer_name="PIM for Groups"))


@users_app.command("add")
@async_command
async def add_user(
    user: str = typer.Argument(...),
    name: str = typer.Option(""),
    email: Optional[str] = typer.Option(None, help="where email notifications go"),
    service: bool = typer.Option(False, "--service", help="a service principal (an application's client-credentials sign-in)"),
    as_: Optional[str] = AS,
) -> None:
    """Add a user (or, with --service, a service principal) to the directory."""
    from pim.operations import principals as principal_ops

    if (actor := remote.acting(as_)) is None:
        await admin_api.add_user(user, name, email, "service" if service else "user")
    else:
        async with admin(actor) as ctx:
            await principal_ops.add_user(ctx, user, name, email, kind="service" if service else "user")
    typer.echo(f"{'service principal' if service else 'user'} {user} added")


@roles_app.command("grant")
@async_command
async def grant_role(
    principal: str = typer.Argument(...),
    role: str = typer.Argument(..., help='e.g. "Groups Administrator"'),
    as_: Optional[str] = AS,
) -> None:
    """Give a user or a service principal a directory role."""
    from pim.operations import principals as principal_ops

    if (actor := remote.acting(as_)) is None:
        await admin_api.grant_role(principal, role)
    else:
        async with admin(actor) as ctx:
            await principal_ops.grant_role(ctx, principal, role)
    typer.echo(f"{principal} is now {role}")


# --- groups -----------------------------------------------------------------

KIND = typer.Option(..., help="security | microsoft365 | dynamic | synced")
ROLE_ASSIGNABLE = typer.Option(False, "--role-assignable")


async def _add_group(
    operation: Callable[..., Awaitable[None]], group: str, kind: str, role_assignable: bool, as_: str | None
) -> None:
    if (actor := remote.acting(as_)) is None:
        await admin_api.add_group(group, kind, role_assignable, onboard=operation.__name__ == "onboard_group")
        return
    async with admin(actor) as ctx:
        await operation(
            ctx, group, kind, role_assignable=role_assignable, max_role_assignable=settings().max_role_assignable_groups
        )


@groups_app.command("create")
@async_command
async def create_group(
    group: str = typer.Argument(...), kind: str = KIND, role_assignable: bool = ROLE_ASSIGNABLE, as_: Optional[str] = AS
) -> None:
    """Create a group without enabling it in PIM (its members are plain, permanent)."""
    from pim.operations import groups as group_ops

    await _add_group(group_ops.create_group, group, kind, role_assignable, as_)
    typer.echo(f"{group} created")


@groups_app.command("onboard")
@async_command
async def onboard_group(
    group: str = typer.Argument(...), kind: str = KIND, role_assignable: bool = ROLE_ASSIGNABLE, as_: Optional[str] = AS
) -> None:
    """Enable GROUP in PIM (creating it if unknown), with default member and owner policies."""
    from pim.operations import groups as group_ops

    await _add_group(group_ops.onboard_group, group, kind, role_assignable, as_)
    typer.echo(f"{group} enabled in PIM")


@groups_app.command("offboard")
@async_command
async def offboard(group: str = typer.Argument(...), as_: Optional[str] = AS) -> None:
    """Take GROUP out of PIM: its eligible assignments end; refused while activations run."""
    from pim.operations import groups as group_ops

    if (actor := remote.acting(as_)) is None:
        ended = await admin_api.offboard(group)
    else:
        async with admin(actor, temporal=True) as ctx:
            ended = await group_ops.offboard_group(ctx, group)
    typer.echo(f"{group} is no longer in PIM; eligible assignments ended: {', '.join(ended) or 'none'}")


@groups_app.command("list")
@async_command
async def list_groups(json_: bool = JSON) -> None:
    """Every group, with kind and PIM status."""
    from pim.store.views import group_view

    if remote.in_api_mode():
        rows = await admin_api.groups()
    else:
        async with open_store() as store:
            rows = [group_view(g) for g in await store.groups()]
    if json_:
        emit_json(rows)
        return
    print_table(("group", "kind", "flags"), ((r["id"], r["kind"], _group_flags(r)) for r in rows))


def _group_flags(row: GroupView) -> str:
    return ",".join(f for f, on in (("pim", row["pim_enabled"]), ("role-assignable", row["role_assignable"])) if on)


# --- assignments ------------------------------------------------------------


@async_command
async def assign(
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
    as_: Optional[str] = AS,
) -> None:
    """Make PRINCIPAL eligible for (or actively hold) membership or ownership of GROUP; prints the assignment id."""
    from pim.operations import assignments as assignment_ops

    if eligible == active:
        raise CliError("give exactly one of --eligible and --active", 2)
    mfa_code = mfa_code_option(mfa_code)
    window = _window(for_, until, permanent)
    kind: Literal["eligible", "active"] = "eligible" if eligible else "active"
    if (actor := remote.acting(as_)) is None:
        assignment_id = await admin_api.assign(
            group, principal, access=_access(owner), kind=kind, justification=justification, mfa_code=mfa_code, window=window
        )
        typer.echo(assignment_id)
        return
    async with admin(actor, temporal=bool(window)) as ctx:
        assignment_id = await assignment_ops.create_assignment(
            ctx,
            group,
            principal,
            access=_access(owner),
            kind=kind,
            justification=justification,
            mfa_code=mfa_code,
            **window,
        )
    typer.echo(assignment_id)


@async_command
async def unassign(
    assignment_id: str = typer.Argument(...), reason: Optional[str] = typer.Option(None), as_: Optional[str] = AS
) -> None:
    """Remove an assignment (not in its first 5 minutes)."""
    from pim.operations import assignments as assignment_ops

    if (actor := remote.acting(as_)) is None:
        await admin_api.unassign(assignment_id, reason)
    else:
        async with admin(actor, temporal=True) as ctx:
            await assignment_ops.remove_assignment(ctx, assignment_id, reason)
    typer.echo(f"{assignment_id} removed")


@assignments_app.command("list")
@async_command
async def list_assignments(
    group: Optional[str] = typer.Option(None),
    principal: Optional[str] = typer.Option(None),
    all_: bool = typer.Option(False, "--all", help="also removed ones"),
    json_: bool = JSON,
) -> None:
    """Assignments with their state (scheduled, active, expired, removed)."""
    from pim.store.views import assignment_view

    if remote.in_api_mode():
        items = await admin_api.assignments(group, principal, all_)
    else:
        at = _now()
        async with open_store() as store:
            items = [assignment_view(r, at) for r in await store.assignments(group, principal, include_removed=all_)]
    if json_:
        emit_json(items)
        return
    print_table(
        ("id", "kind", "access", "group", "principal", "state", "ends"),
        (
            (i["id"], i["kind"], i["access"], i["group_id"], i["principal_id"], i["state"], i["ends_at"] or "permanent")
            for i in items
        ),
    )


FOR = typer.Option(None, "--for")
UNTIL = typer.Option(None, "--until")


async def _move_end(
    operation: Callable[..., Awaitable[datetime]],
    assignment_id: str,
    for_: Optional[str],
    until: Optional[str],
    justification: Optional[str],
    as_: str | None,
) -> None:
    window = _window(for_, until, None)
    if (actor := remote.acting(as_)) is None:
        action = operation.__name__.removesuffix("_assignment")  # extend or renew
        typer.echo(f"{assignment_id} now ends at {await admin_api.move_end(action, assignment_id, window, justification)}")
        return
    arguments: dict[str, datetime | timedelta] = (
        {"new_end": window["ends_at"]} if "ends_at" in window else {"extra": window["duration"]}
    )
    async with admin(actor, temporal=True) as ctx:
        new_end = await operation(ctx, assignment_id, justification=justification, **arguments)
    typer.echo(f"{assignment_id} now ends at {new_end.isoformat()}")


@assignments_app.command("extend")
@async_command
async def extend_assignment(
    assignment_id: str = typer.Argument(...),
    for_: Optional[str] = FOR,
    until: Optional[str] = UNTIL,
    justification: Optional[str] = typer.Option(None),
    as_: Optional[str] = AS,
) -> None:
    """Move the end of a running assignment (--for is added to the current end)."""
    from pim.operations import assignments as assignment_ops

    await _move_end(assignment_ops.extend_assignment, assignment_id, for_, until, justification, as_)


@assignments_app.command("renew")
@async_command
async def renew_assignment(
    assignment_id: str = typer.Argument(...),
    for_: Optional[str] = FOR,
    until: Optional[str] = UNTIL,
    justification: Optional[str] = typer.Option(None),
    as_: Optional[str] = AS,
) -> None:
    """Renew an assignment that expired less than 30 days ago (--for counts from now)."""
    from pim.operations import assignments as assignment_ops

    await _move_end(assignment_ops.renew_assignment, assignment_id, for_, until, justification, as_)


# --- policies ---------------------------------------------------------------


@policy_app.command("show")
@async_command
async def show_policy(group: str = typer.Argument(...), owner: bool = typer.Option(False, "--owner")) -> None:
    """Print the policy as JSON, with its version."""
    from pim.store.views import policy_view

    if remote.in_api_mode():
        emit_json(await admin_api.policy(group, _access(owner)))
        return
    async with open_store() as store:
        found = await store.policy(group, _access(owner))
    if found is None:
        raise CliError(f"{group} is not enabled in PIM")
    policy, version = found
    emit_json(policy_view(group, _access(owner), policy, version))


@policy_app.command("set")
@async_command
async def set_policy(
    group: str = typer.Argument(...),
    settings_: list[str] = typer.Argument(
        ..., metavar="KEY=VALUE...", help='e.g. activation.max_duration=PT4H activation.approval=\'[{"approvers":["bob"]}]\''
    ),
    owner: bool = typer.Option(False, "--owner"),
    mfa_code: Optional[str] = typer.Option(
        None, "--mfa-code", help="your code: an owner of a role-assignable group changes its policy only with MFA"
    ),
    as_: Optional[str] = AS,
) -> None:
    """Change policy settings; running requests keep the version they started with."""
    from pim.operations import policies as policy_ops

    if (actor := remote.acting(as_)) is None:
        version = await admin_api.set_policy(group, _access(owner), settings_, mfa_code_option(mfa_code))
    else:
        async with admin(actor) as ctx:
            version = await policy_ops.set_policy(ctx, group, _access(owner), settings_, mfa_code)
    typer.echo(f"{group} {_access(owner).value} policy is now version {version}")


# --- views ------------------------------------------------------------------


@async_command
async def members(
    group: str = typer.Argument(...),
    owners: bool = typer.Option(False, "--owners"),
    eligible: bool = typer.Option(False, "--eligible", help="who may activate, and through what"),
    json_: bool = JSON,
) -> None:
    """Who holds access to GROUP now, and where each access comes from (or, with --eligible, who may activate)."""
    from pim.store.views import members_view

    access = _access(owners)
    if remote.in_api_mode():
        view = await admin_api.members(group, access, eligible)
    else:
        async with open_store() as store:
            if await store.group(group) is None:
                raise CliError(f"no group {group!r}")
            view = await members_view(store, group, access, _now(), eligible=eligible)
    if json_:
        emit_json(view)
        return
    rows = view["eligible"] if "eligible" in view else view["members"]
    if not rows:
        typer.echo(f"nobody {'is eligible for' if eligible else 'holds'} {access.value} of {group}")
    print_table(
        ("principal", "through" if eligible else "sources"),
        ((r["principal_id"], ", ".join(_describe_source(s) for s in r["sources"])) for r in rows),
    )


def _describe_source(source: SourceView) -> str:
    if source["kind"] == "activation":
        return f"activation {source['id']} (see `pim status` for its expiry)"
    label = f"{source['kind']} {source['id']}" + (f" through {source['via']}" if source.get("via") else "")
    return label + (f" until {source['ends_at']}" if source["ends_at"] else " (permanent)")


@mfa_app.command("enroll")
@async_command
async def enroll(
    principal: str = typer.Argument(...),
    mfa_code: Optional[str] = typer.Option(None, "--mfa-code", help="your current code, to re-enrol yourself"),
    as_: Optional[str] = AS,
) -> None:
    """Enrol PRINCIPAL for TOTP (a User or Global Administrator, or PRINCIPAL with their
    current code); prints the otpauth URI for an authenticator app. Audited; PRINCIPAL is told."""
    import pyotp

    from pim.operations import principals as principal_ops

    mfa_code = mfa_code_option(mfa_code)
    if (actor := remote.acting(as_)) is None:
        typer.echo(await admin_api.enroll(principal, mfa_code))
        return
    async with admin(actor) as ctx:
        secret = await principal_ops.enroll_mfa(ctx, principal, mfa_code)
    typer.echo(pyotp.TOTP(secret).provisioning_uri(name=principal, issuer_name="PIM for Groups"))


@mfa_app.command("code")
@async_command
async def code(principal: str = typer.Argument(...)) -> None:
    """Print PRINCIPAL's current TOTP code (development store only; always local, even in API mode)."""
    from pim.identity import totp

    url = settings().database_url
    if not url.startswith("sqlite"):
        raise CliError("mfa code works only on the development (SQLite) store")
    async with open_store() as store:
        secret = await store.mfa_secret(principal)
    if secret is None:  # named: run elsewhere, the same command reads another directory's .pim/pim.db
        raise CliError(f"{principal} has no MFA enrolment (store: {store_location(url)})")
    typer.echo(totp.current_code(secret))


# `pim audit` lists the log; `pim audit verify` checks its hash chain.
audit = typer.Typer(
    help="The audit log, oldest first: time, action, actor, target and details (reason, old and new values).\n\n"
    "`pim audit verify` checks that no line was changed, removed or forged.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@audit.callback(invoke_without_command=True)
def audit_log(
    ctx: typer.Context,
    group: Optional[str] = typer.Option(None),
    principal: Optional[str] = typer.Option(None),
    since: Optional[str] = typer.Option(None, help="ISO 8601 with a zone"),
    json_: bool = JSON,
) -> None:
    """The audit log, oldest first: time, action, actor, target and details (reason, old and new values)."""
    if ctx.invoked_subcommand is None:
        list_audit(group, principal, since, json_)
    elif group or principal or since or json_:
        typer.echo(f"error: give the options after `{ctx.invoked_subcommand}`", err=True)
        raise typer.Exit(2)


@async_command
async def list_audit(group: Optional[str], principal: Optional[str], since: Optional[str], json_: bool) -> None:
    after = parse_instant(since, "--since") if since else None
    from pim.store.views import audit_view

    if remote.in_api_mode():
        rows = await admin_api.audit(group, principal, after)
    else:
        async with open_store() as store:
            rows = [audit_view(r) for r in await store.audit(group_id=group, principal_id=principal, since=after)]
    if json_:
        emit_json(rows)
        return
    print_table(
        ("at", "action", "actor", "group", "principal", "details"),
        ((r["at"], r["action"], r["actor"], r["group_id"], r["principal_id"], _audit_details(r["details"])) for r in rows),
    )


@audit.command("verify")
@async_command
async def audit_verify(
    expect: Optional[str] = typer.Option(
        None, "--expect", metavar="ID:HASH", help="a head printed by an earlier run: row ID must still carry HASH"
    ),
    json_: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> int:
    """Check the audit log's hash chain; exit 1 naming the first broken or forged row.

    Finds a line changed, removed from the middle or forged; not the newest lines
    removed, unless --expect gives a head recorded elsewhere. Run it where the
    application's database role cannot write (docs/security.md)."""
    expected = _expected_head(expect) if expect else None
    if remote.in_api_mode():
        report = await admin_api.verify_audit(expected)
    else:
        async with open_store() as store:
            report = (await store.verify_audit(expected)).as_json()
    problem = report["problem"]
    if json_:
        emit_json(report)
    elif problem is not None:
        typer.echo(f"audit log broken at row {problem['row_id']} ({problem['code']}): {problem['message']}")
    else:
        typer.echo(_intact(report))
    return 0 if report["ok"] else 1


def _expected_head(value: str) -> tuple[int, str]:
    row_id, _, digest = value.partition(":")
    if not (row_id.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise CliError(f"--expect: {value!r} is not ID:HASH (a row id and 64 hex digits)", 2)
    return int(row_id), digest


def _intact(report: dict[str, Any]) -> str:
    """An intact chain's report (ChainReport.as_json, or the API's) in words."""
    head = report["head"]
    if head is None:
        return "audit log intact: no rows yet"
    line = f"audit log intact: {report['rows']} rows; head {head['id']}:{head['hash']}"
    if report["unchained"]:
        first = report["first_chained_id"]
        covered = f"the first chained row, {first}, covers them" if first else "none is chained yet"
        line += f"\n{report['unchained']} rows written before the chain existed carry no hash of their own (unchained); {covered}"
    return line


def _audit_details(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in details.items() if v not in ("", None, [], {}))


@db_app.command("upgrade")
@async_command
async def db_upgrade() -> None:
    """Apply schema migrations to PIM_DATABASE_URL; with PIM_DATABASE_APP_ROLE (PostgreSQL),
    grant that role the tables, and the audit log by SELECT and INSERT only."""
    from pim.store.database import upgrade_async

    config = settings()
    await upgrade_async(config.database_url, app_role=config.database_app_role)
    typer.echo("database is up to date")
    if config.database_app_role:
        typer.echo(f"role {config.database_app_role} may use it; the audit log by SELECT and INSERT only")


@async_command
async def health(json_: bool = JSON) -> int:
    """Check Temporal and the store (reachable, schema up to date); exit 1 when either fails."""
    from pim.runtime.health import check_all

    if remote.in_api_mode():  # the API's own Temporal and store
        checks = await admin_api.health()
    else:
        checks = [c.model_dump() for c in await check_all(settings())]
    if json_:
        emit_json(checks)
    else:
        print_table(("check", "status", "detail"), ((c["name"], "ok" if c["ok"] else "FAILING", c["detail"]) for c in checks))
    return 0 if all(c["ok"] for c in checks) else 1


@async_command
async def reconcile(json_: bool = JSON) -> None:
    """Run the reconciler now (it also runs on its schedule) and print what it found."""
    from pim.domain.reconcile import ReconcileReport
    from pim.runtime.schedules import reconcile_now

    if remote.in_api_mode():
        report = ReconcileReport.model_validate(await admin_api.reconcile())
    else:
        config = settings()
        report = await reconcile_now(await temporal_client(config), config.task_queue)
    if json_:
        emit_json(report)
        return
    print_table(
        ("finding", "access", "group", "principal", "source", "reason"),
        (
            (label, f.access.value, f.group_id, f.principal_id, f.source, f.reason)
            for label, findings in (
                ("revoked", report.revoked),
                ("released", report.released),
                ("unsourced", report.unsourced),
                ("reported", report.reported),
            )
            for f in findings
        ),
    )
    typer.echo(
        f"{len(report.revoked)} revoked, {len(report.released)} claims released, {len(report.unsourced)} without a "
        f"source removed, {len(report.reported)} without a source reported"
    )
