"""`POST /api/proofs`: a wire payload signed by the API's key for the caller, so that
a service or an approver with access to Temporal sends the signal (or starts the
request) themselves, as `pim sign` prints it locally (docs/wire-contract.md).

The API is the production front end: the workers believe whatever its key signs.
So it signs

- for the caller only: the payload's actor (`principal_id`, `approver_id`, `by`)
  must be the caller (403 otherwise);
- the requester's actions and the approver's decisions only: the administrative
  actions (assignment changes, `admin`) go through the API's own endpoints;
- a request's MFA evidence as PimClient sends it: a TOTP code sealed with the API's
  seal key, an OIDC token as given, and the caller's own sign-in when the payload
  has none. A `signin` evidence from the caller is refused: only the API vouches for
  a sign-in, from the token it verified;
- a payload its wire model accepts (400 naming the field), for a request's own
  workflow id, and never a payload that already carries a proof."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, ValidationError

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import BAD_REQUEST, ErrorDetail, GraphError, bad_request, forbidden
from pim.api.native.shapes import NativeIn
from pim.api.services import ApiServices
from pim.domain.actors import Action
from pim.domain.models import (
    ActivationRequest,
    Cancel,
    Deactivate,
    Decision,
    Extend,
    Proven,
    Review,
    violations_from_validation_error,
)
from pim.identity import totp as mfa
from pim.identity.proofs import prove

router = APIRouter(prefix="/api", tags=["proofs"])

# Each action the API signs here: its wire model, and the field that names the actor.
SIGNABLE: dict[Action, tuple[type[Proven], str]] = {
    Action.request: (ActivationRequest, "principal_id"),
    Action.approve: (Decision, "approver_id"),
    Action.deny: (Decision, "approver_id"),
    Action.review: (Review, "approver_id"),
    Action.cancel: (Cancel, "by"),
    Action.deactivate: (Deactivate, "by"),
    Action.extend: (Extend, "by"),
}
DECISIONS = frozenset({Action.approve, Action.deny, Action.review})
_ID = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}"  # pim.domain.models.ID_PATTERN, unanchored
ACTIVATION_WORKFLOW_ID = rf"^activation/{_ID}/(member|owner)/{_ID}$"


class ProofIn(NativeIn):
    action: Literal["request", "approve", "deny", "review", "cancel", "deactivate", "extend"]
    target: Annotated[
        str, Field(pattern=ACTIVATION_WORKFLOW_ID, description="the workflow id: activation/{group}/{access}/{principal}")
    ]
    payload: dict[str, Any] = Field(description="the wire payload without its proof (docs/wire-contract.md)")


class SignedPayload(BaseModel):
    payload: dict[str, Any] = Field(description="the payload with its proof, ready for Temporal; good for 2 minutes, once")


@router.post("/proofs", response_model=SignedPayload, summary="Sign a wire payload for the caller, as its actor")
async def sign_payload(
    body: ProofIn, response: Response, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> SignedPayload:
    action = Action(body.action)
    if action in DECISIONS:
        api.limiter.check(api.decision_limit, caller.principal_id)
    if "proof" in body.payload:
        raise bad_request("payload.proof: send the payload without a proof; the API signs it", "payload.proof")
    model, actor_field = SIGNABLE[action]
    try:
        payload = model.model_validate(body.payload)
    except ValidationError as error:
        raise _invalid_payload(error) from None
    if getattr(payload, actor_field) != caller.principal_id:
        raise forbidden(f"payload.{actor_field}: the API signs for the caller only ({caller.principal_id})", "not_authorized")
    if isinstance(payload, ActivationRequest):
        payload = _request_as_sent(api, caller, payload, body.target)
    signed = prove(api.signer, payload, caller.principal_id, action.value, body.target)
    response.headers["Cache-Control"] = "no-store"  # a proof is spent once; no cache keeps it
    return SignedPayload(payload=signed.model_dump(mode="json"))


def _request_as_sent(api: ApiServices, caller: Caller, request: ActivationRequest, target: str) -> ActivationRequest:
    """The request as PimClient would send it for the caller: for its own workflow id,
    with the caller's sign-in as MFA evidence unless the payload brings a code or a token."""
    if target != request.workflow_id:
        raise bad_request(f"target: a request is started under its own workflow id, {request.workflow_id}", "target")
    evidence = request.mfa
    if evidence is None:
        return request.model_copy(update={"mfa": caller.sign_in_evidence()})
    if evidence.method == "signin":
        raise forbidden(
            "payload.mfa.method: only the API vouches for a sign-in (it adds yours when the payload has no mfa)",
            "not_authorized",
        )
    if evidence.sealed:
        raise bad_request("payload.mfa.sealed: send the code itself; the API seals it", "payload.mfa.sealed")
    return mfa.seal_request(request, api.pim.mfa_seal_key)


def _invalid_payload(error: ValidationError) -> GraphError:
    """Every field the wire model refused, named under `payload.`; no value echoed."""
    details = []
    for violation in violations_from_validation_error(error, prefix="payload."):
        field, sep, _ = violation.message.partition(": ")
        details.append(ErrorDetail(code="invalid_value", message=violation.message, target=field if sep else None))
    return GraphError(400, BAD_REQUEST, "; ".join(d.message for d in details), details)
