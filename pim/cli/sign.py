"""`pim sign --as P ACTION ...`: a complete payload, proof included, for the
`temporal` CLI or any client that drives the workflows by name:

    temporal workflow signal --workflow-id activation/grp-ops/member/alice --name approve \\
        --input "$(pim sign --as bob approve activation/grp-ops/member/alice --justification ok)"

Each action takes the flags of the matching command. The proof is signed with the
local front end's key (`pim dev`'s .pim/proof-signing.key, or PIM_PROOF_SIGNING_KEY)
and expires in two minutes; it is good for that one payload, that one workflow,
once (docs/security.md). In API mode (PIM_API_URL) the API signs it, for whoever
signed in (`POST /api/proofs`): the actor is them, and `--as` is refused."""

from __future__ import annotations

from typing import Optional

import typer

from pim.cli import remote
from pim.cli.common import CliError, async_command, parse_duration_option, settings
from pim.cli.requests import build_request, mfa_evidence
from pim.domain.actors import Action
from pim.domain.models import (
    Cancel,
    Deactivate,
    Decision,
    Extend,
    Proven,
    Review,
    ReviewDecision,
)
from pim.identity import totp as mfa
from pim.identity.proofs import SigningKey, configured_signing_key, prove

sign_app = typer.Typer(
    help="Print a signed payload (proof included) for `temporal workflow start/signal/update --input`.",
    no_args_is_help=True,
)
AS = typer.Option(None, "--as", help="the actor the proof names (local mode; in API mode, who signed in)")
REQUEST_ID = typer.Argument(..., help="the request id (its workflow id)")


def _signer() -> SigningKey:
    try:
        signer = configured_signing_key(settings())
    except ValueError as error:
        raise CliError(str(error), 2) from None
    if signer is None:
        raise CliError("no signing key: run where `pim dev` runs (its .pim/), or set PIM_PROOF_SIGNING_KEY")
    return signer


async def _actor(as_: str | None) -> tuple[str, bool]:
    """Who the proof names, and whether the API signs it (API mode: who signed in)."""
    actor = remote.acting(as_)
    if actor is not None:
        return actor, False
    return str((await remote.call("GET", "/api/me"))["principal_id"]), True


async def _emit(payload: Proven, actor: str, action: Action, target: str, through_api: bool = False) -> None:
    if not through_api:
        typer.echo(prove(_signer(), payload, actor, action.value, target).model_dump_json())
        return
    body = {"action": action.value, "target": target, "payload": payload.model_dump(mode="json", exclude={"proof"})}
    signed = await remote.call("POST", "/api/proofs", json=body)
    typer.echo(type(payload).model_validate(signed["payload"]).model_dump_json())


@sign_app.command("request")
@async_command
async def sign_request(
    group: str = typer.Argument(..., help="group id"),
    as_: str = AS,
    owner: bool = typer.Option(False, "--owner"),
    duration: Optional[str] = typer.Option(None),
    justification: Optional[str] = typer.Option(None),
    ticket: Optional[str] = typer.Option(None, help="SYSTEM:NUMBER"),
    mfa_code: Optional[str] = typer.Option(None, "--mfa-code", help="sealed before signing when a seal key is set"),
    start_at: Optional[str] = typer.Option(None, "--start-at"),
    validate_only: bool = typer.Option(False, "--validate-only"),
) -> None:
    """The input of `temporal workflow start --type GroupActivation --workflow-id activation/GROUP/ACCESS/P`."""
    actor, through_api = await _actor(as_)
    evidence = mfa_evidence(mfa_code, None, None)
    request = build_request(group, actor, owner, duration, justification, ticket, evidence, start_at, validate_only)
    if not through_api:  # the API seals the code with its own key
        request = mfa.seal_request(request, mfa.seal_key(settings()))
    await _emit(request, actor, Action.request, request.workflow_id, through_api)


def _decision_command(name: str) -> None:
    @sign_app.command(name)
    @async_command
    async def sign_decision(request_id: str = REQUEST_ID, as_: Optional[str] = AS, justification: Optional[str] = None) -> None:
        actor, through_api = await _actor(as_)
        await _emit(Decision(approver_id=actor, justification=justification), actor, Action(name), request_id, through_api)

    sign_decision.__doc__ = f"The input of the `{name}` signal."


_decision_command("approve")
_decision_command("deny")


@sign_app.command("review")
@async_command
async def sign_review(
    request_id: str = REQUEST_ID,
    as_: Optional[str] = AS,
    decision: ReviewDecision = typer.Option(..., help="approve or deny"),
    justification: Optional[str] = typer.Option(None),
) -> None:
    """The input of the `review` update."""
    actor, through_api = await _actor(as_)
    review = Review(approver_id=actor, decision=decision, justification=justification)
    await _emit(review, actor, Action.review, request_id, through_api)


@sign_app.command("cancel")
@async_command
async def sign_cancel(request_id: str = REQUEST_ID, as_: Optional[str] = AS, reason: Optional[str] = typer.Option(None)) -> None:
    """The input of the `cancel` signal."""
    actor, through_api = await _actor(as_)
    await _emit(Cancel(by=actor, reason=reason), actor, Action.cancel, request_id, through_api)


@sign_app.command("deactivate")
@async_command
async def sign_deactivate(
    request_id: str = REQUEST_ID, as_: Optional[str] = AS, reason: Optional[str] = typer.Option(None)
) -> None:
    """The input of the `deactivate` signal."""
    actor, through_api = await _actor(as_)
    await _emit(Deactivate(by=actor, reason=reason), actor, Action.deactivate, request_id, through_api)


@sign_app.command("extend")
@async_command
async def sign_extend(
    request_id: str = REQUEST_ID,
    as_: Optional[str] = AS,
    duration: str = typer.Option(..., help="how much longer, e.g. 1h"),
    justification: Optional[str] = typer.Option(None),
) -> None:
    """The input of the `extend` signal."""
    extra = parse_duration_option(duration)
    actor, through_api = await _actor(as_)
    await _emit(Extend(by=actor, duration=extra, justification=justification), actor, Action.extend, request_id, through_api)


keys_app = typer.Typer(
    help="Keys for a deployment.\n\nServer-side: always local, even with PIM_API_URL set.", no_args_is_help=True
)


@keys_app.command("new")
def new_keys(issuer: str = typer.Option("pim-api", help="the front end's name in its proofs (`iss`)")) -> None:
    """Print fresh keys as settings (an .env file for docker compose): the front end's
    signing key and the matching trusted key for workers, the TOTP secret key, the
    MFA seal key and the portal's session key. Keep the output secret; give each part only to those docs/security.md names."""
    import base64
    import os

    try:
        signer = SigningKey.generate(issuer)
    except ValueError as error:
        raise CliError(f"--issuer: {error}", 2) from None
    typer.echo(f"PIM_PROOF_SIGNING_KEY={signer.serialize()}")
    typer.echo(f"PIM_PROOF_TRUSTED_KEYS={signer.trusted().serialize()}")
    typer.echo(f"PIM_MFA_SECRET_KEY=k1:{base64.b64encode(os.urandom(32)).decode()}")
    typer.echo(f"PIM_MFA_SEAL_KEY={base64.b64encode(os.urandom(32)).decode()}")
    typer.echo(f"PIM_PORTAL_SESSION_KEY=k1:{base64.b64encode(os.urandom(32)).decode()}")
