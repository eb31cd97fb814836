"""Who acts: the actions a proof can authorize, and what a workflow asks the
proof-checking activity (an `ActorCheck`) and learns back (an `ActorVerdict`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Action(StrEnum):
    """What a proof authorizes (its `act` claim)."""

    request = "request"
    approve = "approve"
    deny = "deny"
    review = "review"
    cancel = "cancel"
    deactivate = "deactivate"
    extend = "extend"
    extend_assignment = "extend_assignment"
    remove_assignment = "remove_assignment"
    admin = "admin"  # an administrative operation (its payload names which one)


class ActorCheck(BaseModel):
    """Input of `verify_actor`: does `proof` bind this actor, action, target and payload?"""

    proof: str | None = Field(default=None, repr=False)
    actor: str
    action: Action
    target: str  # the workflow id the payload was sent to
    payload: dict[str, Any]  # the payload's signed part (`Proven.signed_part`)
    # Identifies this use of the proof: a retry of the same check is accepted again,
    # any other use of the same proof is a replay.
    use_key: str


class ActorVerdict(BaseModel):
    accepted: bool
    code: str | None = None  # proof_missing, proof_invalid, proof_expired, proof_mismatch, proof_replayed
    reason: str | None = None
    issuer: str | None = None  # the front end that vouched for the actor

    @classmethod
    def refused(cls, code: str, reason: str) -> ActorVerdict:
        return cls(accepted=False, code=code, reason=reason)
