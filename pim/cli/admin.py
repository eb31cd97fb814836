"""Administrative commands, enough to set up a scenario (the full admin side,
with lifecycles and fine-grained authorization, is a later issue)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Optional

import typer
from pydantic import ValidationError

from pim import mfa as totp
from pim.cli.common import CliError, emit_json, open_store, parse_instant, require_admin, run, settings
from pim.durations import parse_duration
from pim.models import AccessType
from pim.policy import Policy

groups_app = typer.Typer(help="Groups known to PIM.", no_args_is_help=True)
policy_app = typer.Typer(help="Activation and assignment policies.", no_args_is_help=True)
mfa_app = typer.Typer(help="TOTP enrolment.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)


def _access(owner: bool) -> AccessType:
    return AccessType.owner if owner else AccessType.member


def _now() -> datetime:
    return datetime.now(UTC)


@groups_app.command("onboard")
def onboard(
    group: str = typer.Argument(...),
    kind: str = typer.Option(..., help="security | microsoft365 | dynamic | synced"),
    role_assignable: bool = typer.Option(False, "--role-assignable"),
    as_: str = typer.Option(..., "--as"),
) -> None:
    """Enable GROUP in PIM (creating it if unknown), with default policies."""
    if kind not in ("security", "microsoft365", "dynamic", "synced"):
        raise CliError(f"--kind: {kind!r} is not one of security, microsoft365, dynamic, synced", 2)

    async def go() -> None:
        async with open_store() as store:
            await require_admin(store, as_)
            await store.onboard_group(group, kind, role_assignable=role_assignable, by=as_)
            await store.append_audit(at=_now(), action="group_onboarded", actor=as_, group_id=group,
                                     details={"kind": kind, "role_assignable": str(role_assignable).lower()})
            typer.echo(f"{group} enabled in PIM")

    run(go)


@groups_app.command("list")
def list_groups(json_: bool = typer.Option(False, "--json")) -> None:
    """Every group in the store, with kind and PIM status."""

    async def go() -> None:
        async with open_store() as store:
            rows = [dict(id=g.id, kind=g.kind, role_assignable=g.role_assignable, pim_enabled=g.pim_enabled)
                    for g in await store.groups()]
        if json_:
            emit_json(rows)
            return
        for r in rows:
            flags = [f for f, on in (("pim", r["pim_enabled"]), ("role-assignable", r["role_assignable"])) if on]
            typer.echo(f"{r['id']}\t{r['kind']}\t{','.join(flags) or '-'}")

    run(go)


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
    as_: str = typer.Option(..., "--as"),
) -> None:
    """Make PRINCIPAL eligible for (or actively hold) membership or ownership of GROUP."""
    if eligible == active:
        raise CliError("give exactly one of --eligible and --active", 2)
    if sum(bool(x) for x in (for_, until, permanent)) != 1:
        raise CliError("give exactly one of --for, --until and --permanent", 2)

    async def go() -> None:
        start = _now()
        end = None
        if for_:
            end = start + parse_duration(for_, "--for")
        elif until:
            end = parse_instant(until, "--until")
            if end <= start:
                raise CliError("--until: must be in the future", 2)
        async with open_store() as store:
            await require_admin(store, as_)
            kind = "eligible" if eligible else "active"
            assignment_id = await store.assign(group, principal, access=_access(owner), kind=kind, starts_at=start,
                                               ends_at=end, justification=justification, by=as_)
            await store.append_audit(at=start, action="assignment_created", actor=as_, group_id=group,
                                     access=_access(owner).value, principal_id=principal,
                                     details={"assignment_id": assignment_id, "kind": kind,
                                              "ends_at": end.isoformat() if end else "permanent"})
            typer.echo(assignment_id)

    try:
        run(go)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)


@policy_app.command("show")
def show_policy(group: str = typer.Argument(...), owner: bool = typer.Option(False, "--owner")) -> None:
    """Print the policy as JSON, with its version."""

    async def go() -> None:
        async with open_store() as store:
            found = await store.policy(group, _access(owner))
        if found is None:
            raise CliError(f"{group} is not enabled in PIM")
        policy, version = found
        emit_json({"group_id": group, "access": _access(owner).value, "version": version,
                   "policy": policy.model_dump(mode="json")})

    run(go)


def _set_path(target: dict, dotted: str, raw: str) -> None:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as PT4H
    node = target
    keys = dotted.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise CliError(f"{dotted}: unknown setting", 2)
        node = node[key]
    if keys[-1] not in node:
        raise CliError(f"{dotted}: unknown setting", 2)
    node[keys[-1]] = value


@policy_app.command("set")
def set_policy(
    group: str = typer.Argument(...),
    settings_: list[str] = typer.Argument(..., metavar="KEY=VALUE...",
                                          help='e.g. activation.max_duration=PT4H activation.approval=\'[{"approvers":["bob"]}]\''),
    owner: bool = typer.Option(False, "--owner"),
    as_: str = typer.Option(..., "--as"),
) -> None:
    """Change policy settings; running requests keep the version they started with."""

    async def go() -> None:
        async with open_store() as store:
            await require_admin(store, as_)
            found = await store.policy(group, _access(owner))
            if found is None:
                raise CliError(f"{group} is not enabled in PIM")
            old = found[0].model_dump(mode="json")
            data = json.loads(json.dumps(old))
            for item in settings_:
                key, sep, raw = item.partition("=")
                if not sep:
                    raise CliError(f"{item!r}: use KEY=VALUE", 2)
                _set_path(data, key.strip(), raw)
            try:
                policy = Policy.model_validate(data)
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                raise CliError(problems, 2) from None
            for stage in policy.activation.approval:
                for approver in stage.approvers:
                    if await store.principal(approver) is None:
                        raise CliError(f"activation.approval: no principal {approver!r}", 2)
            version = await store.set_policy(group, _access(owner), policy, by=as_)
            await store.append_audit(at=_now(), action="policy_changed", actor=as_, group_id=group,
                                     access=_access(owner).value,
                                     details={"version": str(version), "changes": ", ".join(settings_)})
            typer.echo(f"{group} {_access(owner).value} policy is now version {version}")

    run(go)


def members(group: str = typer.Argument(...), owners: bool = typer.Option(False, "--owners"),
            json_: bool = typer.Option(False, "--json")) -> None:
    """Who holds access to GROUP now, and where each access comes from."""

    async def go() -> None:
        access = _access(owners)
        async with open_store() as store:
            if await store.group(group) is None:
                raise CliError(f"no group {group!r}")
            held = await store.memberships(group, access)
            grants = await store.live_grants(group, access, _now())
        rows = []
        for m in held:
            sources = [dict(kind=g.source_kind, id=g.source_id.split("#")[0],
                            ends_at=g.ends_at.isoformat() if g.ends_at else None)
                       for g in grants if g.principal_id == m.principal_id]
            rows.append(dict(principal_id=m.principal_id, since=m.since.isoformat(), sources=sources))
        if json_:
            emit_json({"group_id": group, "access": access.value, "members": rows})
            return
        if not rows:
            typer.echo(f"nobody holds {access.value} of {group}")
        for r in rows:
            described = ", ".join(_describe_source(s) for s in r["sources"]) or "no recorded source"
            typer.echo(f"{r['principal_id']}\t{described}")

    run(go)


def _describe_source(source: dict) -> str:
    if source["kind"] == "activation":
        return f"activation {source['id']} (see `pim status` for its expiry)"
    return f"assignment {source['id']}" + (f" until {source['ends_at']}" if source["ends_at"] else " (permanent)")


@mfa_app.command("enroll")
def enroll(principal: str = typer.Argument(...)) -> None:
    """Enrol PRINCIPAL for TOTP; prints the otpauth URI for an authenticator app."""

    async def go() -> None:
        async with open_store() as store:
            if await store.principal(principal) is None:
                raise CliError(f"no principal {principal!r}")
            secret = totp.new_secret()
            await store.enroll_mfa(principal, secret, _now())
        import pyotp

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


def audit(group: Optional[str] = typer.Option(None), principal: Optional[str] = typer.Option(None),
          since: Optional[str] = typer.Option(None), json_: bool = typer.Option(False, "--json")) -> None:
    """The audit log, oldest first."""

    async def go() -> None:
        async with open_store() as store:
            rows = await store.audit(group_id=group, principal_id=principal,
                                     since=parse_instant(since, "--since") if since else None)
        items = [dict(at=r.at.isoformat(), action=r.action, actor=r.actor, request_id=r.request_id,
                      group_id=r.group_id, access=r.access, principal_id=r.principal_id, details=r.details) for r in rows]
        if json_:
            emit_json(items)
            return
        for i in items:
            typer.echo(f"{i['at']}\t{i['action']}\t{i['actor'] or '-'}\t{i['group_id'] or '-'}\t{i['principal_id'] or '-'}")

    run(go)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to PIM_DATABASE_URL."""
    from pim.store.database import upgrade

    upgrade(settings().database_url)
    typer.echo("database is up to date")
