"""Admission of a request: policy, eligibility, justification, ticket and MFA
checks, and the claim that makes it the only running activation of its kind."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from temporalio import activity

from activities.access import SOURCE_KIND, PreparedGrant, log_granted, prepare_grant
from activities.interfaces import AdmissionInterface
from pim.domain.activation_rules import evaluate_request, requested_duration, violation
from pim.domain.actors import Action, ActorCheck, ActorVerdict
from pim.domain.durations import format_duration
from pim.domain.grant_rules import check_workflow_id
from pim.domain.models import ActivationRequest, Violation
from pim.domain.policy import Policy
from pim.domain.status import AccessChange, Admission, AdmitInput
from pim.identity import oidc
from pim.identity import totp as mfa
from pim.identity.actors import ProofPolicy, proof_use, used_verdict, verify_signature
from pim.identity.totp_check import AttemptScope, totp_matcher, totp_verdict
from pim.notifications.compose import compose, describe
from pim.notifications.model import Notification
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.access import ActivationFacts
from pim.store.grants import confer_in
from pim.store.identity import TotpUse

log = get_logger("pim.activities")


@dataclass
class AdmissionActivities(AdmissionInterface):
    store: Store
    # Which front ends vouch for the requester (PIM_PROOF_TRUSTED_KEYS).
    proofs: ProofPolicy
    # The key that clients seal MFA codes with (pim/mfa.py): PIM_MFA_SEAL_KEY or `pim dev`'s.
    mfa_seal_key: bytes | None = field(default_factory=mfa.configured_seal_key)
    # Step-up MFA with the identity provider (pim/oidc.py): PIM_OIDC_*, None when unset.
    oidc_verifier: oidc.OidcVerifier | None = field(default_factory=oidc.configured_verifier)
    # The directory is the store's own table: the grant is a store-only step, run as a
    # local activity (Admission.grant_locally).
    grant_locally: bool = False

    @activity.defn
    async def admit_request(self, data: AdmitInput) -> Admission:
        """Idempotent: a retry with the same run key finds its own claim and its own MFA step.

        Three visits to the store: one read (the policy, the eligibility facts, the
        approvers, the administrators and their contacts), then two write
        transactions: who asks (the proof used up, and a TOTP code tried with it),
        then the verdict (the claim, and the audit line with its notifications; and
        the grant, for a request that needs no approval and starts now, with the
        built-in directory)."""
        request = data.request
        known = await self.store.activation_facts(request.group_id, request.access, request.principal_id, data.at)
        facts = known.facts
        # An enabled group always has its two policies; without one the rules
        # report the group as not found or not enabled, and the defaults stand in.
        found = known.policy is not None
        policy, policy_version = known.policy or Policy(), known.policy_version
        deciders = [[u for u in users if u != request.principal_id] for users in known.approvers]
        # Who asks comes first: an unproven request is refused before anything else is
        # looked at, and its MFA evidence is left alone (else anyone could burn someone's code).
        unproven, totp = await self._prove(data)
        violations = unproven or evaluate_request(request, data.run_key, policy, facts, deciders, data.at)
        if not unproven and request.mfa is not None:
            # Evidence sent is verified and used up whatever the verdict, a dry run's too:
            # a code from the history of a refused request or a dry run is never good again.
            # Its violations count where the policy requires MFA.
            refused = await self._verify_mfa(request, data, policy, totp)
            if not violations and policy.activation.require_mfa:
                violations = refused
        duration = requested_duration(request, policy.activation)
        key = f"{data.run_key}:requested"
        # Composed before the claim is taken; queued only if the request is admitted.
        notifications = (
            await self._requested_notifications(data, policy, deciders, known.administrators, duration, key, known.contacts)
            if not violations and not request.validate_only
            else []
        )
        grant = await self._immediate_grant(data, violations, policy, policy_version, duration, known)
        violations, written_at = await self._decide(
            data, violations, unproven, policy, policy_version, duration, key, notifications, grant
        )
        admission = Admission(
            violations=violations,
            policy=policy if found else None,
            policy_version=policy_version,
            duration=duration,
            stage_deciders=deciders,
            administrators=known.administrators,
            grant_locally=self.grant_locally,
            granted_at=data.at if written_at else None,
            written_at=written_at,
        )
        log.info(
            "request admitted" if admission.admitted else "request rejected",
            request_id=data.request_id,
            group_id=request.group_id,
            access=request.access.value,
            principal_id=request.principal_id,
            violations=[v.code for v in violations],
            validate_only=request.validate_only,
        )
        return admission

    async def _prove(self, data: AdmitInput) -> tuple[list[Violation], TotpUse | None]:
        """The request runs under its canonical id, and its proof names its principal
        (the violations when not). The proof is used up, and a TOTP code tried, in
        one transaction: the code only once the proof counted."""
        request = data.request
        refused = check_workflow_id(data.request_id, request)
        if refused:
            return refused, None
        check = ActorCheck(
            proof=request.proof,
            actor=request.principal_id,
            action=Action.request,
            target=data.request_id,
            payload=request.signed_part(),
            use_key=data.run_key,
        )
        signed = verify_signature(self.proofs, check)
        if isinstance(signed, ActorVerdict) and not signed.accepted:
            return [violation(signed.code or "proof_invalid", signed.reason or "proof: refused")], None
        match = self._totp_matcher(request, data)
        store = self.store

        def work(session: Session) -> tuple[bool, TotpUse | None]:
            # Accepted without a proof only in insecure development mode: nothing to use up.
            used = isinstance(signed, ActorVerdict) or store.proof_use_in(session, **proof_use(signed))
            if not used or match is None:
                return used, None
            return used, store.totp_use_in(session, request.principal_id, data.at, match, data.run_key)

        used, totp = await store.transact(work)
        verdict = signed if isinstance(signed, ActorVerdict) else used_verdict(signed, used)
        if verdict.accepted:
            return [], totp
        return [violation(verdict.code or "proof_invalid", verdict.reason or "proof: refused")], None

    def _totp_matcher(self, request: ActivationRequest, data: AdmitInput) -> Callable[[str], int | None] | None:
        """What checks the request's TOTP code, or None when it brings no code to try
        (no MFA evidence, another method, or a sealed code this worker cannot open)."""
        evidence = request.mfa
        if evidence is None or evidence.method in ("oidc", "signin") or (evidence.sealed and self.mfa_seal_key is None):
            return None
        seal_key = self.mfa_seal_key
        sealed = (seal_key, mfa.SealBinding.of(request, data.request_id)) if evidence.sealed and seal_key else None
        return totp_matcher(evidence.code or "", sealed)

    async def _immediate_grant(
        self,
        data: AdmitInput,
        violations: list[Violation],
        policy: Policy,
        policy_version: int | None,
        duration: timedelta,
        known: ActivationFacts,
    ) -> PreparedGrant | None:
        """The grant to write with the claim, when the request is admitted, needs no
        approval, starts now, and the directory is the store's own table: then the
        checks just made are the grant's, in the transaction that grants. Otherwise
        None: the workflow grants later, and that grant checks again."""
        request = data.request
        starts_later = request.start_at is not None and request.start_at > data.at
        if violations or request.validate_only or not self.grant_locally or policy.activation.approval or starts_later:
            return None
        change = AccessChange(
            request_id=data.request_id,
            run_key=data.run_key,
            group_id=request.group_id,
            access=request.access,
            principal_id=request.principal_id,
            at=data.at,
            expires_at=data.at + duration,
            granted=True,
            policy=policy,
            policy_version=policy_version,
            administrators=known.administrators,
        )
        return await prepare_grant(self.store, change, known.contacts)

    async def _decide(
        self,
        data: AdmitInput,
        violations: list[Violation],
        unproven: list[Violation],
        policy: Policy,
        policy_version: int | None,
        duration: timedelta,
        key: str,
        notifications: list[Notification],
        grant: PreparedGrant | None,
    ) -> tuple[list[Violation], datetime | None]:
        """Take the claim (for an admitted request that is no dry run), and write the
        audit line, with the notifications when the request is admitted, and the
        grant when there is one to write now: one transaction. Returns the
        violations (`already_active` when another run holds the claim), and when
        the grant was written (None: not granted)."""
        request = data.request
        claim = not violations and not request.validate_only
        store = self.store

        def verdict(holder: str | None) -> list[Violation]:
            if not claim or holder == data.run_key:
                return violations
            running = (holder or "").split("#")[0]
            return [violation("already_active", "an activation for the same group and access is already running: " + running)]

        def work(session: Session) -> tuple[list[Violation], int, bool]:
            holder = None
            if claim:
                holder = store.claim_in(session, request.group_id, request.access, request.principal_id, data.run_key, data.at)
                if holder is None:  # taken and released meanwhile by another process: the retry looks again
                    raise RuntimeError("the claim was released while it was being taken: try again")
            final = verdict(holder)
            queued = store.audit_in(
                session,
                at=data.at,
                action="activation_rejected" if final else "activation_requested",
                actor="unverified" if unproven else request.principal_id,
                request_id=data.request_id,
                group_id=request.group_id,
                access=request.access.value,
                principal_id=request.principal_id,
                details={
                    "verified": not unproven,
                    "violations": [v.model_dump() for v in final],
                    "validate_only": request.validate_only,
                    "duration": format_duration(duration),
                    "justification": request.justification or "",
                    "policy_version": policy_version,
                },
                dedupe_key=key,
                notifications=[] if final else notifications,
                channels=policy.notifications.channels,
            )
            if grant is None or final:
                return final, queued, False
            target = (request.group_id, request.access, request.principal_id)
            then = partial(store.audit_in, **grant.line)
            return final, queued + confer_in(session, *target, record_source=grant.record_source, then=then), True

        target = (request.group_id, request.access.value, request.principal_id)
        try:
            # A grant is written under the target's lock, as `confer` writes one.
            async with store.access_lock(*target) if grant is not None else nullcontext():
                final, queued, granted = await store.transact(work)
        except IntegrityError:
            # The audit line is there already: an earlier attempt of this activity wrote
            # it, its claim and its grant (if any) with it, then failed. Its verdict
            # stands, and the store says whether it granted.
            holder = (
                await store.claim_activation(request.group_id, request.access, request.principal_id, data.run_key, data.at)
                if claim
                else None
            )
            final = verdict(holder)
            granted = claim and not final and await store.has_grant(SOURCE_KIND, data.run_key)
            return final, datetime.now(UTC) if granted else None
        if queued:
            store.wake_dispatcher()
        if not granted:
            return final, None
        assert grant is not None
        log_granted(grant.change)
        return final, datetime.now(UTC)

    async def _requested_notifications(
        self,
        data: AdmitInput,
        policy: Policy,
        deciders: list[list[str]],
        administrators: list[str],
        duration: timedelta,
        key: str,
        contacts: dict[str, tuple[str | None, str]],
    ) -> list[Notification]:
        request = data.request
        approval = policy.activation.approval
        details = {
            "duration": format_duration(duration),
            "justification": request.justification or "",
            "ticket": f"{request.ticket.system}:{request.ticket.number}" if request.ticket else "",
            "state": "pending_approval" if approval else "activating",
        }
        if approval:
            details["approval_deadline"] = (data.at + policy.activation.approval_timeout).isoformat()
            details["stage"] = f"1 of {len(approval)}"
        return await compose(
            self.store,
            key=key,
            event="activation_requested",
            at=data.at,
            rule=policy.notifications,
            people={
                "requestor": [request.principal_id],
                "approvers": deciders[0] if approval else [],
                "admins": administrators,
            },
            subject=("Approval needed: " if approval else "Activation requested: ")
            + describe(request.access.value, request.group_id, request.principal_id),
            request_id=data.request_id,
            run_key=data.run_key,
            group_id=request.group_id,
            access=request.access.value,
            principal_id=request.principal_id,
            details=details,
            contacts=contacts,
        )

    async def _verify_mfa(
        self, request: ActivationRequest, data: AdmitInput, policy: Policy, totp: TotpUse | None
    ) -> list[Violation]:
        """The verdict on the request's MFA evidence, used up: a TOTP code was tried
        with the proof (`_prove`), an OIDC token is used up here
        (pim/identity/totp_check.py, pim/identity/oidc.py)."""
        assert request.mfa is not None
        evidence = request.mfa
        if evidence.method == "oidc":
            return await self._verify_oidc(evidence.token or "", request, data, policy)
        if evidence.method == "signin":  # vouched for by the front end whose proof admitted the request
            claims = {"amr": evidence.amr, "acr": evidence.acr, "auth_time": evidence.auth_time}
            problem = oidc.check_sign_in(claims, policy.activation, time.time())
            return [problem] if problem else []
        seal_key = self.mfa_seal_key
        if evidence.sealed and seal_key is None:
            return [mfa.MFA_UNSEALABLE]
        assert totp is not None  # tried by _prove
        verdict = await totp_verdict(
            self.store,
            request.principal_id,
            totp,
            at=data.at,
            scope=AttemptScope("request", request.group_id, request.access.value, data.request_id),
            meter=activity.metric_meter() if activity.in_activity() else None,
        )
        if seal_key is not None and not evidence.sealed:
            # In the history in clear: verified (so used up) like any other, then refused.
            return [mfa.MFA_UNSEALED]
        return verdict.violations

    async def _verify_oidc(self, token: str, request: ActivationRequest, data: AdmitInput, policy: Policy) -> list[Violation]:
        # An unreachable identity provider raises JwksUnavailable: the activity retries.
        if self.oidc_verifier is None:
            return [oidc.NOT_CONFIGURED]
        verdict = await self.oidc_verifier.verify(token, request.principal_id, policy.activation)
        # A genuine token of this principal is used up whatever the verdict, a dry run's too.
        if verdict.replay_key is not None and not await self.store.consume_mfa_token(
            request.principal_id, verdict.replay_key, data.run_key, data.at
        ):
            return [oidc.TOKEN_REPLAYED]
        return verdict.violations
