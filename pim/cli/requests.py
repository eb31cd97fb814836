"""Commands of requesters and approvers: request, approve, deny, cancel,
deactivate, extend, status, requests.

Each runs locally (Temporal, with `--as` naming the actor and `pim dev`'s key
proving it) or, with PIM_API_URL set, through the HTTP API as whoever signed in
(pim/cli/remote.py). Both print the same from the same ActivationStatus."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TypeVar

import typer

from pim.cli import remote
from pim.cli.common import (
    CliError,
    async_command,
    mfa_code_option,
    open_store,
    parse_duration_option,
    parse_instant,
    pim_client,
    settings,
    temporal_client,
)
from pim.cli.describe import describe_status
from pim.cli.output import emit_json, print_table
from pim.domain.models import AccessType, ActivationRequest, State, Ticket
from pim.domain.status import ActivationStatus

# Temporal's client is imported by the commands that talk to it (pim/cli/app.py).
if TYPE_CHECKING:
    pass

T = TypeVar("T")


# What `pim requests --json` prints of each request (docs/cli.md).
LISTED = {"request_id", "state", "group_id", "access", "principal_id", "running"}
# Who a request built in API mode names until the API puts the caller there: it is
# built only so that a malformed option is refused here, as in local mode.
SIGNED_IN = "signed-in-user"


def describe(status: ActivationStatus) -> str:
    return describe_status(status.model_dump(mode="json"))


def mfa_evidence(code: str | None, token: str | None, token_file: str | None) -> dict[str, str] | None:
    """--mfa-code, --mfa-token or --mfa-token-file (one at most), as the request's
    `mfa` (validated with it, so errors name `mfa.code` or `mfa.token`). A file keeps
    the token out of the shell history and the process list."""
    if sum(x is not None for x in (code, token, token_file)) > 1:
        raise CliError("use one of --mfa-code, --mfa-token and --mfa-token-file", 2)
    code = mfa_code_option(code)
    if token_file is not None:
        try:
            token = sys.stdin.read() if token_file == "-" else Path(token_file).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"--mfa-token-file: cannot read {token_file}: {error.__class__.__name__}", 2) from None
    if token is not None:
        return {"method": "oidc", "token": token.strip()}
    return {"method": "totp", "code": code} if code else None


def parse_ticket(ticket: str | None) -> Ticket | None:
    if ticket is None:
        return None
    system, sep, number = ticket.partition(":")
    if not sep:
        raise CliError("--ticket: use SYSTEM:NUMBER, e.g. jira:OPS-123", 2)
    return Ticket(system=system, number=number)


def build_request(
    group: str,
    principal: str,
    owner: bool,
    duration: str | None,
    justification: str | None,
    ticket: str | None,
    mfa: dict[str, str] | None,
    start_at: str | None,
    validate_only: bool,
) -> ActivationRequest:
    """An ActivationRequest from the options of `pim request` (and `pim sign request`)."""
    return ActivationRequest(
        group_id=group,
        access=AccessType.owner if owner else AccessType.member,
        principal_id=principal,
        duration=parse_duration_option(duration) if duration else None,
        justification=justification,
        ticket=parse_ticket(ticket),
        mfa=mfa,  # validated into MfaEvidence, so that errors name mfa.code or mfa.token
        start_at=parse_instant(start_at, "--start-at") if start_at else None,
        validate_only=validate_only,
    )


def show(status: ActivationStatus, json_: bool) -> None:
    if json_:
        emit_json(status)
    else:
        typer.echo(describe(status))


AS_REQUESTER = typer.Option(None, "--as", help="the requesting principal (local mode; in API mode, who signed in)")
AS_APPROVER = typer.Option(None, "--as", help="the approver (local mode; in API mode, who signed in)")
AS_ACTOR = typer.Option(None, "--as", help="the acting principal (local mode; in API mode, who signed in)")
JSON = typer.Option(False, "--json", help="print JSON instead of text")
JSON_LIST = typer.Option(False, "--json", help="print JSON instead of a table")


@async_command
async def request(
    group: str = typer.Argument(..., help="group id"),
    as_: str = AS_REQUESTER,
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
    json_: bool = JSON,
) -> int:
    """Ask for membership (or ownership) of GROUP; prints the request id."""
    actor = remote.acting(as_)
    if actor is None and (mfa_token is not None or mfa_token_file is not None):
        raise CliError("--mfa-token: in API mode your sign-in is the MFA evidence (or give --mfa-code)", 2)
    mfa = mfa_evidence(mfa_code, mfa_token, mfa_token_file)
    req = build_request(group, actor or SIGNED_IN, owner, duration, justification, ticket, mfa, start_at, validate_only)
    from pim.operations import requests as flows

    if actor is None:
        return await request_through_api(req, mfa_code, wait, json_)
    pim = await pim_client()
    request_id = await pim.start(req)
    if not wait:
        typer.echo(request_id)
        return 0
    settled = await flows.wait_settled(pim, request_id)
    show(settled, json_)
    if any(v.code == "mfa_invalid" for v in settled.violations):
        note_local_seal_key()
    return 0 if flows.settled_ok(settled) else 1


async def request_through_api(req: ActivationRequest, mfa_code: str | None, wait: bool, json_: bool) -> int:
    """POST /api/requests: the same request, the caller its principal; the same exit codes."""
    from pim.operations.requests import settled_ok

    body = req.model_dump(mode="json", include={"group_id", "access", "duration", "justification", "ticket", "start_at"})
    body.update(mfa_code=mfa_code, validate_only=req.validate_only, wait=wait)
    answer = await remote.call("POST", "/api/requests", json=remote.fields(**body))
    if not wait:
        typer.echo(answer["request_id"])
        return 0
    settled = ActivationStatus.model_validate(answer)
    show(settled, json_)
    return 0 if settled_ok(settled) else 1


def note_local_seal_key() -> None:
    """A code refused as wrong may be right but sealed with another `pim dev`'s key:
    say which key this command took from the working directory."""
    from pim.identity.totp import DEV_SEAL_KEY_FILE

    if not settings().mfa_seal_key and DEV_SEAL_KEY_FILE.is_file():
        typer.echo(
            f"note: the code was sealed with {DEV_SEAL_KEY_FILE.resolve()} (this directory's `pim dev`); "
            "the workers of a `pim dev` run from another directory hold another key and refuse it",
            err=True,
        )


async def review(request_id: str, approver: str | None, decision: str, justification: str | None) -> ActivationStatus:
    """The `review` update; a refusal its validator made is audited in the local store, when there is one.
    In API mode (no approver named), the API's, in the signed-in approver's name."""
    from pim.operations import requests as flows

    if approver is None:
        return await through_api(request_id, decision, justification=justification)
    pim = await pim_client()
    try:
        async with open_store() as store:
            return await flows.review(pim, store, request_id, approver, decision, justification)
    except CliError:  # no local store (a remote deployment): the refusal is still reported to the caller
        return await flows.review(pim, None, request_id, approver, decision, justification)


@async_command
async def approve(
    request_id: str = typer.Argument(...),
    as_: Optional[str] = AS_APPROVER,
    justification: Optional[str] = typer.Option(None),
    json_: bool = JSON,
) -> None:
    """Approve a pending request (refused with the reason when not allowed)."""
    show(await review(request_id, remote.acting(as_), "approve", justification), json_)


@async_command
async def deny(
    request_id: str = typer.Argument(...),
    as_: Optional[str] = AS_APPROVER,
    justification: Optional[str] = typer.Option(None),
    json_: bool = JSON,
) -> None:
    """Deny a pending request (refused with the reason when not allowed)."""
    show(await review(request_id, remote.acting(as_), "deny", justification), json_)


async def through_api(request_id: str, action: str, **body: str | None) -> ActivationStatus:
    """POST /api/requests/ID/ACTION as the signed-in user: the request as it is after it."""
    answer = await remote.call("POST", f"/api/requests/{remote.path_of(request_id)}/{action}", json=remote.fields(**body))
    return ActivationStatus.model_validate(answer)


@async_command
async def cancel(
    request_id: str = typer.Argument(...), as_: Optional[str] = AS_ACTOR, reason: Optional[str] = typer.Option(None)
) -> None:
    """Cancel a request that is pending approval or scheduled."""
    from pim.operations import requests as flows

    actor = remote.acting(as_)
    if actor is None:
        typer.echo(describe(await through_api(request_id, "cancel", reason=reason)))
        return
    typer.echo(describe(await flows.cancel(await pim_client(), request_id, actor, reason)))


@async_command
async def deactivate(
    request_id: str = typer.Argument(...), as_: Optional[str] = AS_ACTOR, reason: Optional[str] = typer.Option(None)
) -> None:
    """End an active activation early."""
    from pim.operations import requests as flows

    actor = remote.acting(as_)
    if actor is None:
        typer.echo(describe(await through_api(request_id, "deactivate", reason=reason)))
        return
    typer.echo(describe(await flows.deactivate(await pim_client(), request_id, actor, reason)))


@async_command
async def extend(
    request_id: str = typer.Argument(...),
    as_: Optional[str] = AS_ACTOR,
    duration: str = typer.Option(..., help="how much longer, e.g. 1h"),
    justification: Optional[str] = typer.Option(None),
) -> None:
    """Extend an active activation (within the policy maximum unless an approver extends)."""
    from pim.domain.durations import format_duration
    from pim.operations import requests as flows

    actor = remote.acting(as_)
    extra = parse_duration_option(duration)
    if actor is None:
        extended = await through_api(request_id, "extend", duration=format_duration(extra), justification=justification)
        typer.echo(describe(extended))
        return
    typer.echo(describe(await flows.extend(await pim_client(), request_id, actor, extra, justification)))


@async_command
async def status(request_id: str = typer.Argument(...), json_: bool = JSON) -> None:
    """Show a request: state, approvals, times, violations."""
    from pim.client import PimClient

    if remote.in_api_mode():
        show(ActivationStatus.model_validate(await remote.call("GET", f"/api/requests/{remote.path_of(request_id)}")), json_)
        return
    show(await PimClient(await temporal_client()).status(request_id), json_)  # a query: nothing to sign or seal


@async_command
async def requests(
    state: Optional[State] = typer.Option(None),
    group: Optional[str] = typer.Option(None),
    principal: Optional[str] = typer.Option(None),
    json_: bool = JSON_LIST,
) -> None:
    """List requests, newest first."""
    if remote.in_api_mode():
        query = {"state": state.value if state else None, "group": group, "principal": principal}
        rows = await remote.call("GET", "/api/requests", params=query)
    else:
        pim = await pim_client()
        try:
            found = await pim.list(state.value if state else None, group, principal)
        except ValueError as error:  # a filter value the visibility query cannot hold
            raise CliError(str(error), 2) from None
        rows = [f.model_dump(mode="json", include=LISTED) for f in found]
    if json_:
        emit_json(rows)
        return
    print_table(
        ("request", "state", "access", "group", "principal"),
        ((r["request_id"], r["state"], r["access"], r["group_id"], r["principal_id"]) for r in rows),
    )


def register(app: typer.Typer) -> None:
    for name, command in (
        ("request", request),
        ("approve", approve),
        ("deny", deny),
        ("cancel", cancel),
        ("deactivate", deactivate),
        ("extend", extend),
        ("status", status),
        ("requests", requests),
    ):
        app.command(name)(command)
