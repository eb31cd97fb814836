"""The wire contract of SPEC section 3: requests, signals and their payloads.

Every model here travels through Temporal as JSON written by the pydantic data
converter, so field names are part of the contract.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from pim.domain.durations import MAX_DURATION, Duration

# Ids are plain, printable and short: they end up in workflow ids, search
# attributes and log lines. Unicode look-alikes and control characters are refused.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
PrincipalId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
GroupId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

MAX_TEXT = 2000  # justifications and reasons; longer text is refused, not truncated


# What a worker sees in place of a payload it could not decode (pim/runtime/codec.py):
# the workflow refuses it like any malformed payload, naming why.
UNDECODABLE = "pim_undecodable"


def undecodable(raw: object) -> str | None:
    """Why `raw` stands for a payload that could not be decoded, or None."""
    if isinstance(raw, dict) and set(raw) == {UNDECODABLE}:
        return str(raw[UNDECODABLE])[:200]
    return None


def valid_actor(value: object) -> str | None:
    """`value` when it is a well-formed principal id, else None: what a refusal may
    name as its claimed actor (no control characters, no look-alikes, bounded)."""
    return value if isinstance(value, str) and re.fullmatch(ID_PATTERN, value) else None


class Contract(BaseModel):
    """Base for wire models: unknown fields are refused so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class AccessType(StrEnum):
    member = "member"
    owner = "owner"


class State(StrEnum):
    validating = "validating"
    rejected = "rejected"
    pending_approval = "pending_approval"
    denied = "denied"
    approval_expired = "approval_expired"
    canceled = "canceled"
    scheduled = "scheduled"
    activating = "activating"
    active = "active"
    revoking = "revoking"
    expired = "expired"
    deactivated = "deactivated"
    failed = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        State.rejected,
        State.denied,
        State.approval_expired,
        State.canceled,
        State.expired,
        State.deactivated,
        State.failed,
    }
)

# States a request only passes through, on its way to access and out of it: the
# `PimState` search attribute is not written for them (each write is a history
# event and a write to Temporal's visibility store, on every activation), so
# while a request is in one it is listed under the state it came from.
PASSING_STATES = frozenset({State.activating, State.revoking})
_CAME_FROM = {
    State.activating: {State.validating, State.pending_approval, State.scheduled},
    State.revoking: {State.activating, State.active},  # revoking follows a grant, or an attempt at one
}


def listed_as(state: State) -> frozenset[State]:
    """The `PimState` values a request in `state` may be listed under."""
    if state not in PASSING_STATES:
        return frozenset({state})
    return frozenset(shown for before in _CAME_FROM[state] for shown in listed_as(before))


def may_be_in(listed: State) -> frozenset[State]:
    """The states a request listed under `PimState = listed` may be in."""
    return frozenset(state for state in State if listed in listed_as(state))


class Ticket(Contract):
    system: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
    number: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]


MAX_MFA_TOKEN = 16384  # far above any real ID or access token; bounds what a worker parses
# A compact JWS: header.payload.signature, base64url. The signature part may be
# empty here (`alg: none`) so that such a token reaches the verifier and is refused there.
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class MfaEvidence(Contract):
    """`{"method": "totp", "code": "123456"}`, `{"method": "oidc", "token": "<JWT>"}`, or
    `{"method": "signin", "auth_time": 1796000000, "amr": ["otp", "mfa"]}`: the front end
    that signed the request's proof vouches that the principal signed in with MFA at
    `auth_time` (the HTTP API, from the identity provider's token; docs/security.md).

    One model with a check rather than a discriminated union, so that every error
    names a field (`mfa.token`, `mfa.method`) and the TOTP wire shape is unchanged."""

    # Errors never echo what was sent: it may be a code or a token.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    method: Literal["totp", "oidc", "signin"] = "totp"
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    # An ID or access token from the identity provider, verified by the worker (pim/oidc.py).
    token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MFA_TOKEN)] | None = None
    # True when `code` is the client's seal of the code, not the code (pim/mfa.py):
    # what PimClient sends, so that no code is ever written in a Temporal history.
    sealed: StrictBool = False
    # method signin: when and how the principal signed in (the token's auth_time, amr, acr).
    auth_time: StrictInt | None = None
    amr: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] | None = Field(default=None, max_length=10)
    acr: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None

    @model_validator(mode="after")
    def _shape_of_method(self) -> "MfaEvidence":
        if self.method == "signin":
            if self.auth_time is None or not 0 < self.auth_time < 2**33:
                raise ValueError("mfa.auth_time: required with method signin (seconds since the epoch)")
            if self.code is not None or self.token is not None or self.sealed:
                raise ValueError("mfa: method signin carries auth_time, amr and acr only")
            return self
        if self.auth_time is not None or self.amr is not None or self.acr is not None:
            raise ValueError("mfa.auth_time: only with method signin")
        if self.method == "totp":
            if self.code is None:
                raise ValueError("mfa.code: required with method totp")
            if self.token is not None:
                raise ValueError("mfa.token: only with method oidc")
            if self.sealed and not re.fullmatch(r"[A-Za-z0-9_-]{43}", self.code):
                raise ValueError("mfa.code: a sealed code is 43 base64url characters")
        else:
            if self.token is None:
                raise ValueError("mfa.token: required with method oidc")
            if self.code is not None:
                raise ValueError("mfa.code: only with method totp")
            if self.sealed:
                raise ValueError("mfa.sealed: an OIDC token is never sealed (the worker verifies its signature)")
            if not JWT_SHAPE.fullmatch(self.token):
                raise ValueError("mfa.token: not a JWT (three base64url parts separated by dots)")
        return self

    @model_serializer(mode="wrap")
    def _without_the_other_method(self, handler):
        # The field of the other method is left out, so a TOTP payload is written
        # exactly as before `token` existed (and older workers still read it).
        data = handler(self)
        for name in ("code", "token", "auth_time", "amr", "acr"):
            if name in data and data[name] is None:
                del data[name]
        return data

    def __repr__(self) -> str:  # a code or token must never reach a log line through repr()
        if self.method == "oidc":
            return f"MfaEvidence(method={self.method!r}, token='***')"
        return f"MfaEvidence(method={self.method!r}, code='***', sealed={self.sealed!r})"

    __str__ = __repr__


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def positive_duration(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be a positive duration")
    if value is not None and value > MAX_DURATION:
        raise ValueError("must be at most P3660D")
    return value


def sane_instant(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 2000 and 2200")
    return value


# A compact JWS (pim/identity/proofs.py); far above any real one, it bounds what a worker parses.
MAX_PROOF = 4096
Proof = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROOF)]


class Proven(Contract):
    """A payload that names an actor and carries `proof`: a short-lived assertion,
    signed by a front end the workers trust, that this actor sent exactly this
    payload to this workflow. Without a valid one the action is refused."""

    proof: Proof | None = Field(default=None, repr=False)

    def signed_part(self) -> dict[str, Any]:
        """What the proof's digest covers: the payload in its wire form, without the proof."""
        return self.model_dump(mode="json", exclude={"proof"})


class ActivationRequest(Proven):
    # An error raised while building one (the CLI, PimClient) never echoes the MFA code or token.
    model_config = ConfigDict(extra="forbid", frozen=False, hide_input_in_errors=True)

    group_id: GroupId
    access: AccessType
    principal_id: PrincipalId
    duration: Duration | None = None
    justification: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = None
    ticket: Ticket | None = None
    mfa: MfaEvidence | None = None
    start_at: AwareDatetime | None = None
    validate_only: StrictBool = False

    _positive = field_validator("duration")(positive_duration)
    _sane_start = field_validator("start_at")(sane_instant)

    @property
    def workflow_id(self) -> str:
        return activation_workflow_id(self.group_id, self.access, self.principal_id)


def activation_workflow_id(group_id: str, access: AccessType | str, principal_id: str) -> str:
    return f"activation/{group_id}/{AccessType(access).value}/{principal_id}"


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class Decision(Proven):
    """Payload of the `approve` and `deny` signals."""

    approver_id: PrincipalId
    justification: Text | None = None


class ReviewDecision(StrEnum):
    approve = "approve"
    deny = "deny"


class Review(Proven):
    """Payload of the `review` update."""

    approver_id: PrincipalId
    decision: ReviewDecision
    justification: Text | None = None


class Cancel(Proven):
    by: PrincipalId
    reason: Text | None = None


class Deactivate(Proven):
    by: PrincipalId
    reason: Text | None = None


class Extend(Proven):
    by: PrincipalId
    duration: Duration
    justification: Text | None = None

    _positive = field_validator("duration")(positive_duration)


class Violation(BaseModel):
    code: str
    message: str


def violations_from_validation_error(error: Exception, prefix: str = "") -> list[Violation]:
    """Turn a pydantic ValidationError into violations that name each field."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return [Violation(code="invalid_request", message=str(error)[:300])]
    out = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "payload"
        message = item["msg"].removeprefix("Value error, ")
        # A model-level check names its own fields ("activation.max_duration must ...").
        text = message if message.startswith(f"{field}.") else f"{field}: {message}"
        out.append(Violation(code="invalid_field", message=f"{prefix}{text}"))
    return out


def is_blank(text: str | None) -> bool:
    return text is None or not re.sub(r"\s+", "", text)


__all__ = [
    "AccessType",
    "ActivationRequest",
    "Cancel",
    "Deactivate",
    "Decision",
    "Extend",
    "MfaEvidence",
    "PASSING_STATES",
    "Review",
    "ReviewDecision",
    "State",
    "Ticket",
    "Violation",
    "listed_as",
    "may_be_in",
]
