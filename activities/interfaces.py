"""The activities as workflows see them: name, input and result of each, and
nothing else. Workflows call these methods by reference
(`workflow.execute_activity_method(AccessInterface.grant_access, ...)`), so the
type checker follows every call; the classes in this package implement them,
and mypy checks that each implementation keeps the signature.

Workflow-safe: this module imports only the domain and Temporal's activity
decorator. An activity's name is its method's name, here and in the
implementation alike."""

from __future__ import annotations

from datetime import datetime

from temporalio import activity

from pim.domain.actors import ActorCheck, ActorVerdict
from pim.domain.assignments import AssignmentEnd, AssignmentLoaded, AssignmentLookup
from pim.domain.reconcile import ReconcileInput, ReconcileReport
from pim.domain.status import AccessChange, Admission, AdmitInput, AuditRecord


class ProofInterface:
    @activity.defn
    async def verify_actor(self, check: ActorCheck) -> ActorVerdict:
        """Does the payload's proof bind this actor, action, target and payload? Uses it up."""
        raise NotImplementedError


class AdmissionInterface:
    @activity.defn
    async def admit_request(self, data: AdmitInput) -> Admission:
        """Policy, eligibility, justification, ticket and MFA checks, and the claim."""
        raise NotImplementedError


class AccessInterface:
    @activity.defn
    async def grant_access(self, change: AccessChange) -> datetime:
        """Record the activation as a source of access and write the membership;
        returns when it was written (the worker's clock)."""
        raise NotImplementedError

    @activity.defn
    async def extend_access(self, change: AccessChange) -> None:
        """Move the grant's end (the backstop revokes a grant past its end) and audit the extension."""
        raise NotImplementedError

    @activity.defn
    async def still_eligible(self, change: AccessChange) -> bool:
        """Whether the principal is still eligible now (an assignment it depended on may have ended)."""
        raise NotImplementedError

    @activity.defn
    async def close_activation(self, change: AccessChange) -> None:
        """Revoke (when granted) and release the claim; retried until it succeeds."""
        raise NotImplementedError


class AuditInterface:
    @activity.defn
    async def record_event(self, record: AuditRecord) -> None:
        """One audit line, and the notifications it causes."""
        raise NotImplementedError


class AssignmentInterface:
    @activity.defn
    async def load_assignment(self, lookup: AssignmentLookup) -> AssignmentLoaded:
        """The assignment as the store has it, or why the workflow must not act on it."""
        raise NotImplementedError

    @activity.defn
    async def assignment_took_effect(self, event: AssignmentEnd) -> bool:
        """Confer an active assignment's access; False (and audited) when the store disagrees."""
        raise NotImplementedError

    @activity.defn
    async def assignment_end(self, event: AssignmentEnd) -> bool:
        """Withdraw the access when the store says the assignment is over; False when
        it does not (its window moved, or nothing ended it)."""
        raise NotImplementedError


class ReconcileInterface:
    @activity.defn
    async def reconcile_access(self, data: ReconcileInput) -> ReconcileReport:
        raise NotImplementedError


INTERFACES = (ProofInterface, AdmissionInterface, AccessInterface, AuditInterface, AssignmentInterface, ReconcileInterface)
