"""Admission of a request: policy, eligibility, justification, ticket and MFA
checks, and the claim that makes it the only running activation of its kind."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity

from activities.interfaces import AdmissionInterface
from pim.domain.activation_rules import evaluate_request, requested_duration, violation
from pim.domain.actors import Action, ActorCheck
from pim.domain.durations import format_duration
from pim.domain.grant_rules import check_workflow_id
from pim.domain.models import ActivationRequest, Violation
from pim.domain.policy import Policy
from pim.domain.status import Admission, AdmitInput
from pim.identity import oidc
from pim.identity import totp as mfa
from pim.identity.actors import ProofPolicy, check_actor
from pim.identity.totp_check import AttemptScope, verify_totp
from pim.notifications.compose import compose, describe
from pim.notifications.model import Notification
from pim.runtime.logging import get_logger
from pim.store import Store

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

    @activity.defn
    async def admit_request(self, data: AdmitInput) -> Admission:
        """Idempotent: a retry with the same run key finds its own claim and its own MFA step."""
        request = data.request
        found = await self.store.policy(request.group_id, request.access)
        facts = await self.store.eligibility_facts(request.group_id, request.access, request.principal_id, data.at)
        # An enabled group always has its two policies; without one the rules
        # report the group as not found or not enabled, and the defaults stand in.
        policy, policy_version = found if found is not None else (Policy(), None)
        deciders = [
            [u for u in await self.store.expand_approvers(stage.approvers, data.at) if u != request.principal_id]
            for stage in policy.activation.approval
        ]
        # Who asks comes first: an unproven request is refused before anything else is
        # looked at, and its MFA evidence is left alone (else anyone could burn someone's code).
        unproven = await self._unproven(data)
        violations = unproven or evaluate_request(request, data.run_key, policy, facts, deciders, data.at)
        if not unproven and request.mfa is not None:
            # Evidence sent is verified and used up whatever the verdict, a dry run's too:
            # a code from the history of a refused request or a dry run is never good again.
            # Its violations count where the policy requires MFA.
            refused = await self._verify_mfa(request, data, policy)
            if not violations and policy.activation.require_mfa:
                violations = refused
        if not violations and not request.validate_only:
            holder = await self.store.claim_activation(
                request.group_id, request.access, request.principal_id, data.run_key, data.at
            )
            if holder != data.run_key:
                violations = [
                    violation(
                        "already_active",
                        "an activation for the same group and access is already running: " + holder.split("#")[0],
                    )
                ]
        duration = requested_duration(request, policy.activation)
        admission = Admission(
            violations=violations,
            policy=policy if found else None,
            policy_version=policy_version,
            duration=duration,
            stage_deciders=deciders,
            administrators=await self.store.group_administrators(request.group_id, data.at),
        )
        key = f"{data.run_key}:requested"
        notifications = (
            await self._requested_notifications(data, policy, admission, duration, key)
            if admission.admitted and not request.validate_only
            else []
        )
        await self.store.append_audit(
            at=data.at,
            action="activation_requested" if admission.admitted else "activation_rejected",
            actor="unverified" if unproven else request.principal_id,
            request_id=data.request_id,
            group_id=request.group_id,
            access=request.access.value,
            principal_id=request.principal_id,
            details={
                "verified": not unproven,
                "violations": [v.model_dump() for v in violations],
                "validate_only": request.validate_only,
                "duration": format_duration(duration),
                "justification": request.justification or "",
                "policy_version": policy_version,
            },
            dedupe_key=key,
            notifications=notifications,
            channels=policy.notifications.channels,
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

    async def _unproven(self, data: AdmitInput) -> list[Violation]:
        """The request runs under its canonical id, and its proof names its principal."""
        request = data.request
        refused = check_workflow_id(data.request_id, request)
        if refused:
            return refused
        check = ActorCheck(
            proof=request.proof,
            actor=request.principal_id,
            action=Action.request,
            target=data.request_id,
            payload=request.signed_part(),
            use_key=data.run_key,
        )
        verdict = await check_actor(self.store, self.proofs, check)
        if verdict.accepted:
            return []
        return [violation(verdict.code or "proof_invalid", verdict.reason or "proof: refused")]

    async def _requested_notifications(
        self, data: AdmitInput, policy: Policy, admission: Admission, duration: timedelta, key: str
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
                "approvers": admission.stage_deciders[0] if approval else [],
                "admins": admission.administrators,
            },
            subject=("Approval needed: " if approval else "Activation requested: ")
            + describe(request.access.value, request.group_id, request.principal_id),
            request_id=data.request_id,
            run_key=data.run_key,
            group_id=request.group_id,
            access=request.access.value,
            principal_id=request.principal_id,
            details=details,
        )

    async def _verify_mfa(self, request: ActivationRequest, data: AdmitInput, policy: Policy) -> list[Violation]:
        """Verify the request's MFA evidence and use it up (pim/identity/totp_check.py)."""
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
        verdict = await verify_totp(
            self.store,
            request.principal_id,
            evidence.code or "",
            use_key=data.run_key,
            at=data.at,
            scope=AttemptScope("request", request.group_id, request.access.value, data.request_id),
            seal=(seal_key, mfa.SealBinding.of(request, data.request_id)) if evidence.sealed and seal_key else None,
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
