"""What stands between a signal or update and its effect: the payload must
decode, the rules must admit it, and its proof must bind its actor. The gate
refuses (and records the refusal) when any of these fails, and keeps a flood of
forged proofs from growing the history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.interfaces import ProofInterface
    from pim.domain.actors import Action, ActorCheck
    from pim.domain.models import Proven, undecodable, violations_from_validation_error
    from pim.domain.refusals import NOT_EVALUATED, Refusal

from workflows.failures import ACTIVITY_FAILURES, failure_message
from workflows.journal import Journal
from workflows.options import VERIFY

Payload = TypeVar("Payload", bound=Proven)
PROOF_FAILURES_BEFORE_PAUSE = 10  # then at most one proof check per pause
PROOF_PAUSE = timedelta(seconds=10)


class Gate:
    def __init__(self, journal: Journal, run_key: str, target: str) -> None:
        self.journal = journal
        self.run_key = run_key
        self.target = target  # the workflow id every proof must name
        self.checks = 0  # proof checks so far: each one's use key
        self.failed_proofs = 0
        self.last_failed_proof: datetime | None = None

    def parse(self, model: type[Payload], args: tuple[Any, ...], name: str) -> Payload | None:
        """The one payload of a signal, or None (refused) when there is not exactly one
        or it does not decode or validate."""
        if len(args) != 1:
            self.journal.refuse(name, None, f"malformed payload: expected one argument, got {len(args)}")
            return None
        raw = args[0]
        not_decoded = undecodable(raw)
        if not_decoded:
            self.journal.refuse(name, None, f"malformed payload: could not be decoded ({not_decoded})", code="undecodable")
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            reasons = "; ".join(v.message for v in violations_from_validation_error(error))
            actor = (raw.get("by") or raw.get("approver_id")) if isinstance(raw, dict) else None
            self.journal.refuse(name, actor, f"malformed payload: {reasons}")
            return None

    def refused(self, attempted: str, actor: str, rule: Callable[[], Refusal | None], verified: bool = False) -> bool:
        """Whether the rules refuse this; a rule that fails to evaluate refuses too."""
        try:
            refusal = rule()
        except Exception as error:  # noqa: BLE001 - an unforeseen payload must never fail the workflow task
            refusal = Refusal(NOT_EVALUATED, f"could not be evaluated ({type(error).__name__})")
        if refusal:
            self.journal.refuse(attempted, actor, refusal, code=refusal.code, verified=verified)
        return refusal is not None

    async def proof_refusal(self, action: Action, actor: str, payload: Proven, attempted: str) -> tuple[str, str] | None:
        """None when the payload's proof binds this actor; else (code, reason), recorded and audited."""
        if not payload.proof:  # nothing to check: refused without an activity
            return self._refuse(attempted, actor, "proof_missing", "proof: required, from a front end the workers trust")
        now = workflow.now()
        last = self.last_failed_proof
        if self.failed_proofs >= PROOF_FAILURES_BEFORE_PAUSE and last is not None and now - last < PROOF_PAUSE:
            why = f"{self.failed_proofs} proofs failed here; one check per {PROOF_PAUSE.seconds} s"
            return self._refuse(attempted, actor, "proof_rate_limited", why)
        self.checks += 1
        check = ActorCheck(
            proof=payload.proof,
            actor=actor,
            action=action,
            target=self.target,
            payload=payload.signed_part(),
            use_key=f"{self.run_key}:{self.checks}",
        )
        try:
            verdict = await workflow.execute_local_activity_method(ProofInterface.verify_actor, check, **VERIFY)
        except ACTIVITY_FAILURES as error:  # fails closed
            code, why = "proof_unverifiable", failure_message(error)
        else:
            if verdict.accepted:
                return None
            code, why = verdict.code or "proof_invalid", verdict.reason or ""
        self.failed_proofs += 1
        self.last_failed_proof = now
        return self._refuse(attempted, actor, code, why)

    def _refuse(self, attempted: str, actor: str, code: str, why: str) -> tuple[str, str]:
        reason = f"{code}: {why}"
        self.journal.refuse(attempted, actor, reason, code=code)
        return code, reason
