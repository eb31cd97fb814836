"""Why a decision on a running activation is refused: a message people read, and a
stable code that front ends map (the HTTP API answers 403 for `self_approval`, 409
for `already_decided`). A `Refusal` is a `str`, so it reads as its message
wherever a reason is shown or recorded."""

from __future__ import annotations

# The codes, and what they mean (docs/wire-contract.md, "Refusals").
NOT_PENDING = "not_pending"  # the request is not waiting for approval
INVALID_STATE = "invalid_state"  # the action does not apply in the request's state
SELF_APPROVAL = "self_approval"
NOT_AN_APPROVER = "not_an_approver"
ALREADY_DECIDED = "already_decided"
JUSTIFICATION_REQUIRED = "justification_required"
DEADLINE_PASSED = "deadline_passed"
NOT_AUTHORIZED = "not_authorized"
TOO_EARLY = "too_early"  # deactivation within the first 5 minutes
EXTENSION_LIMIT = "extension_limit"
DURATION_EXCEEDED = "duration_exceeded"
NOT_EVALUATED = "not_evaluated"  # a rule that failed to evaluate refuses


class Refusal(str):
    code: str

    def __new__(cls, code: str, message: str) -> "Refusal":
        refusal = super().__new__(cls, message)
        refusal.code = code
        return refusal


def code_of(reason: str) -> str:
    return reason.code if isinstance(reason, Refusal) else NOT_EVALUATED
