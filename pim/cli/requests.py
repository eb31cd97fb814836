"""Commands of requesters and approvers: request, approve, deny, cancel,
deactivate, extend, status, requests."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

import typer
from temporalio.client import WorkflowUpdateFailedError

from pim.cli.common import CliError, emit_json, open_store, parse_instant, pim_client, run
from pim.client import PimClient
from pim.domain.durations import format_duration, parse_duration
from pim.domain.models import AccessType, ActivationRequest, State, Ticket
from pim.domain.status import ActivationStatus

SETTLED_OK = {State.pending_approval, State.scheduled, State.active}
TRANSIENT = {State.validating, State.activating}


def describe(status: ActivationStatus) -> str:
    lines = [f"{status.request_id}: {status.state.value}"]
    if status.group_id:
        lines.append(f"  {status.access.value if status.access else '?'} of {status.group_id} for {status.principal_id}")
    if status.requested_duration:
        lines.append(f"  duration: {format_duration(status.requested_duration)}")
    for index, stage in enumerate(status.stages, start=1):
        decided = ", ".join(f"{d.approver_id} {d.decision.value}d" for d in stage.decisions) or "no decision yet"
        lines.append(
            f"  stage {index}: {stage.approvals}/{stage.required} approvals from {', '.join(stage.approvers)} ({decided})"
        )
    if status.approval_deadline and status.state == State.pending_approval:
        lines.append(f"  approval deadline: {status.approval_deadline.isoformat()}")
    for label, value in (
        ("starts at", status.starts_at),
        ("granted at", status.granted_at),
        ("expires at", status.expires_at),
        ("ended at", status.ended_at),
    ):
        if value:
            lines.append(f"  {label}: {value.isoformat()}")
    if status.end_reason:
        lines.append(f"  reason: {status.end_reason}")
    for v in status.violations:
        lines.append(f"  violation {v.code}: {v.message}")
    return "\n".join(lines)


async def wait_settled(pim: PimClient, request_id: str, timeout: float = 60) -> ActivationStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await pim.status(request_id)
        if status.state not in TRANSIENT or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def signal_and_confirm(pim: PimClient, request_id: str, actor: str, send) -> ActivationStatus:
    """Signals are one-way: read the request's events back to tell the user
    whether the workflow accepted or refused what they sent."""
    before = len((await pim.status(request_id)).events)
    await send()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = await pim.status(request_id)
        for event in status.events[before:]:
            if event.actor == actor and event.note and " refused: " in event.note:
                raise CliError(event.note)
            if event.actor == actor:
                return status
        await asyncio.sleep(0.2)
    raise CliError("the request did not answer in time; check `pim status`")


async def audit_refused_review(
    pim: PimClient, request_id: str, actor: str, decision: str, error: WorkflowUpdateFailedError
) -> None:
    """A refused `review` leaves no trace in the workflow's history (its validator
    runs before anything is written), so the command line audits it."""
    reason = str(getattr(error.cause, "message", None) or error.cause)
    status = await pim.status(request_id)
    try:
        async with open_store() as store:
            await store.append_audit(
                at=datetime.now(UTC),
                action="refused",
                actor=actor,
                request_id=request_id,
                group_id=status.group_id,
                access=status.access.value if status.access else None,
                principal_id=status.principal_id,
                details={"attempted": decision, "reason": reason},
            )
    except CliError:
        pass  # no local store (a remote deployment): the refusal is still reported to the caller


def mfa_evidence(code: str | None, token: str | None, token_file: str | None) -> dict | None:
    """--mfa-code, --mfa-token or --mfa-token-file (one at most), as the request's
    `mfa` (validated with it, so errors name `mfa.code` or `mfa.token`). A file keeps
    the token out of the shell history and the process list."""
    if sum(x is not None for x in (code, token, token_file)) > 1:
        raise CliError("use one of --mfa-code, --mfa-token and --mfa-token-file", 2)
    if token_file is not None:
        try:
            token = sys.stdin.read() if token_file == "-" else Path(token_file).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"--mfa-token-file: cannot read {token_file}: {error.__class__.__name__}", 2) from None
    if token is not None:
        return {"method": "oidc", "token": token.strip()}
    return {"method": "totp", "code": code} if code else None


def register(app: typer.Typer) -> None:
    @app.command()
    def request(
        group: str = typer.Argument(..., help="group id"),
        as_: str = typer.Option(..., "--as", help="the requesting principal"),
        owner: bool = typer.Option(False, "--owner", help="ownership instead of membership"),
        duration: Optional[str] = typer.Option(None, help="e.g. 2h, 30m, PT2H; default: the policy maximum"),
        justification: Optional[str] = typer.Option(None),
        ticket: Optional[str] = typer.Option(None, help="SYSTEM:NUMBER"),
        mfa_code: Optional[str] = typer.Option(None, "--mfa-code"),
        mfa_token: Optional[str] = typer.Option(
            None, "--mfa-token", help="an OIDC ID or access token (JWT) from your identity provider"
        ),
        mfa_token_file: Optional[str] = typer.Option(
            None, "--mfa-token-file", help="read the OIDC token from this file ('-': standard input)"
        ),
        start_at: Optional[str] = typer.Option(None, "--start-at", help="ISO 8601 with a zone"),
        validate_only: bool = typer.Option(False, "--validate-only"),
        wait: bool = typer.Option(False, "--wait", help="wait for the verdict and print the status"),
        json_: bool = typer.Option(False, "--json"),
    ) -> None:
        """Ask for membership (or ownership) of GROUP; prints the request id."""

        async def go() -> int:
            parsed_ticket = None
            if ticket is not None:
                system, sep, number = ticket.partition(":")
                if not sep:
                    raise CliError("--ticket: use SYSTEM:NUMBER, e.g. jira:OPS-123", 2)
                parsed_ticket = Ticket(system=system, number=number)
            req = ActivationRequest(
                group_id=group,
                access=AccessType.owner if owner else AccessType.member,
                principal_id=as_,
                duration=parse_duration(duration) if duration else None,
                justification=justification,
                ticket=parsed_ticket,
                mfa=mfa_evidence(mfa_code, mfa_token, mfa_token_file),
                start_at=parse_instant(start_at, "--start-at") if start_at else None,
                validate_only=validate_only,
            )
            pim = await pim_client()
            request_id = await pim.start(req)
            if not wait:
                typer.echo(request_id)
                return 0
            status = await wait_settled(pim, request_id)
            emit_json(status) if json_ else typer.echo(describe(status))
            passed_dry_run = validate_only and not status.violations and status.state == State.canceled
            return 0 if status.state in SETTLED_OK or passed_dry_run else 1

        try:
            code = run(go)
        except ValueError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(code)

    def decision_command(name: str) -> None:
        @app.command(name=name)
        def decide(
            request_id: str = typer.Argument(...),
            as_: str = typer.Option(..., "--as", help="the approver"),
            justification: Optional[str] = typer.Option(None),
            json_: bool = typer.Option(False, "--json"),
        ) -> None:
            async def go() -> None:
                pim = await pim_client()
                try:
                    status = await pim.review(request_id, as_, name, justification)
                except WorkflowUpdateFailedError as error:
                    await audit_refused_review(pim, request_id, as_, name, error)
                    raise
                if status.state in TRANSIENT:
                    status = await wait_settled(pim, request_id)
                emit_json(status) if json_ else typer.echo(describe(status))

            run(go)

        decide.__doc__ = f"{name.capitalize()} a pending request (refused with the reason when not allowed)."

    decision_command("approve")
    decision_command("deny")

    def end_command(name: str, doc: str) -> None:
        @app.command(name=name)
        def end(
            request_id: str = typer.Argument(...),
            as_: str = typer.Option(..., "--as"),
            reason: Optional[str] = typer.Option(None),
        ) -> None:
            async def go() -> None:
                pim = await pim_client()
                send = getattr(pim, name)
                status = await signal_and_confirm(pim, request_id, as_, lambda: send(request_id, as_, reason))
                typer.echo(describe(status))

            run(go)

        end.__doc__ = doc

    end_command("cancel", "Cancel a request that is pending approval or scheduled.")
    end_command("deactivate", "End an active activation early.")

    @app.command()
    def extend(
        request_id: str = typer.Argument(...),
        as_: str = typer.Option(..., "--as"),
        duration: str = typer.Option(..., help="how much longer, e.g. 1h"),
        justification: Optional[str] = typer.Option(None),
    ) -> None:
        """Extend an active activation (within the policy maximum unless an approver extends)."""

        async def go() -> None:
            extra = parse_duration(duration)
            pim = await pim_client()
            status = await signal_and_confirm(pim, request_id, as_, lambda: pim.extend(request_id, as_, extra, justification))
            typer.echo(describe(status))

        try:
            run(go)
        except ValueError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    @app.command()
    def status(request_id: str = typer.Argument(...), json_: bool = typer.Option(False, "--json")) -> None:
        """Show a request: state, approvals, times, violations."""

        async def go() -> None:
            pim = await pim_client()
            result = await pim.status(request_id)
            emit_json(result) if json_ else typer.echo(describe(result))

        run(go)

    @app.command()
    def requests(
        state: Optional[State] = typer.Option(None),
        group: Optional[str] = typer.Option(None),
        principal: Optional[str] = typer.Option(None),
        json_: bool = typer.Option(False, "--json"),
    ) -> None:
        """List requests, newest first."""

        async def go() -> None:
            pim = await pim_client()
            found = await pim.list(state.value if state else None, group, principal)
            if json_:
                emit_json([f.model_dump(mode="json") for f in found])
                return
            for item in found:
                typer.echo(f"{item.request_id}\t{item.state}\t{item.access}\t{item.group_id}\t{item.principal_id}")

        run(go)
