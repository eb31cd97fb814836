"""Checking an actor's proof against the trusted keys, and using the proof up in
the store. The activities and the administrative operations share this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pim.domain.actors import ActorCheck, ActorVerdict
from pim.identity.proofs import PROOF_REPLAYED, ProofClaims, ProofRefused, TrustedKey, TrustedKeys
from pim.runtime.logging import get_logger
from pim.runtime.settings import PimSettings
from pim.store import Store

log = get_logger("pim.identity.actors")
INSECURE_ISSUER = "insecure-development"


@dataclass(frozen=True)
class ProofPolicy:
    """What a process accepts: proofs signed with `trusted` keys, or, in insecure
    development mode only, any claimed actor."""

    trusted: TrustedKeys | None
    insecure: bool = False

    def __post_init__(self) -> None:
        if self.trusted is None and not self.insecure:
            raise ValueError(
                "no trusted proof issuer: set PIM_PROOF_TRUSTED_KEYS "
                "(or, for development only, PIM_INSECURE_ACCEPT_UNPROVEN=true)"
            )


@dataclass(frozen=True)
class SignedCheck:
    """A check whose proof's signature, binding and lifetime hold: the proof is still
    to be used up (`Store.use_proof`, or `Store.proof_use_in` inside the caller's
    own transaction), then `used_verdict` says whether it counts."""

    check: ActorCheck
    claims: ProofClaims
    now: datetime


def verify_signature(policy: ProofPolicy, check: ActorCheck, now: datetime | None = None) -> ActorVerdict | SignedCheck:
    """Everything about the proof but its use (no store): a verdict when it is
    refused (or accepted without a proof, in insecure development mode), else a
    `SignedCheck` to use it up with."""
    now = now or datetime.now(UTC)
    if policy.trusted is None:
        log.warning(
            "actor accepted without proof (PIM_INSECURE_ACCEPT_UNPROVEN)",
            actor=check.actor,
            action=check.action.value,
            target=check.target,
        )
        return ActorVerdict(accepted=True, issuer=INSECURE_ISSUER)
    try:
        claims = policy.trusted.verify(
            check.proof, actor=check.actor, action=check.action.value, target=check.target, payload=check.payload, now=now
        )
    except ProofRefused as refused:
        log.warning(
            "actor proof refused",
            code=refused.code,
            reason=refused.message,
            actor=check.actor,
            action=check.action.value,
            target=check.target,
        )
        return ActorVerdict.refused(refused.code, refused.message)
    return SignedCheck(check, claims, now)


def used_verdict(signed: SignedCheck, used: bool) -> ActorVerdict:
    """The verdict on a signed proof once its use was tried: a proof already used
    for anything else is a replay."""
    check = signed.check
    if not used:
        log.warning("actor proof replayed", actor=check.actor, action=check.action.value, target=check.target)
        return ActorVerdict.refused(PROOF_REPLAYED, "proof: already used")
    return ActorVerdict(accepted=True, issuer=signed.claims.issuer)


def proof_use(signed: SignedCheck) -> dict[str, Any]:
    """The arguments of `Store.use_proof` (and `Store.proof_use_in`) for this proof."""
    check = signed.check
    return dict(
        proof_id=signed.claims.proof_id,
        use_key=check.use_key,
        actor=check.actor,
        action=check.action.value,
        target=check.target,
        at=signed.now,
        expires_at=signed.claims.expires_at,
    )


async def check_actor(store: Store, policy: ProofPolicy, check: ActorCheck, now: datetime | None = None) -> ActorVerdict:
    """Accepted when the proof binds exactly this actor, action, target and payload,
    is valid now and was never used for anything else; refused with a code otherwise."""
    signed = verify_signature(policy, check, now)
    if isinstance(signed, ActorVerdict):
        return signed
    return used_verdict(signed, await store.use_proof(**proof_use(signed)))


def configured_proof_policy(settings: PimSettings, also_trust: Sequence[TrustedKey] = ()) -> ProofPolicy:
    """The keys of PIM_PROOF_TRUSTED_KEYS (plus `also_trust`: `pim dev`'s own key);
    ValueError, naming the setting, when there is none and insecure mode is off."""
    keys = list(TrustedKeys.parse(settings.proof_trusted_keys).by_id.values()) if settings.proof_trusted_keys else []
    keys += list(also_trust)
    if keys:
        return ProofPolicy(TrustedKeys(keys))
    if settings.insecure_accept_unproven:
        log.error(
            "INSECURE: PIM_INSECURE_ACCEPT_UNPROVEN is on and no proof issuer is trusted: anyone who reaches "
            "Temporal can act as anyone. Development only; never in production."
        )
        return ProofPolicy(None, insecure=True)
    return ProofPolicy(None)  # raises: no trusted issuer
