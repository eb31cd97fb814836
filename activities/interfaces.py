"""The activities as workflows see them: name, input and result of each, and
nothing else. Workflows call these methods by reference
(`workflow.execute_activity_method(AccessInterface.grant_access, ...)`), so the
type checker follows every call; the classes in this package implement them,
and mypy checks that each implementation keeps the signature.

Workflow-safe: this module imports only the domain and Temporal's activity
decorator. An activity's name is its method's name, here and in the
implementation alike."""

from __future__ import annotations

from temporalio import activity

from pim.domain.assignments import AssignmentEnd, AssignmentWindow
from pim.domain.reconcile import ReconcileInput, ReconcileReport
from pim.domain.status import AccessChange, Admission, AdmitInput, AuditRecord


class AdmissionInterface:
    @activity.defn
    async def admit_request(self, data: AdmitInput) -> Admission:
        """Policy, eligibility, justification, ticket and MFA checks, and the claim."""
        raise NotImplementedError


class AccessInterface:
    @activity.defn
    async def grant_access(self, change: AccessChange) -> None:
        """Record the activation as a source of access and write the membership."""
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
    async def assignment_took_effect(self, event: AssignmentEnd) -> None:
        raise NotImplementedError

    @activity.defn
    async def assignment_window_changed(self, window: AssignmentWindow) -> None:
        raise NotImplementedError

    @activity.defn
    async def assignment_end(self, event: AssignmentEnd) -> None:
        raise NotImplementedError


class ReconcileInterface:
    @activity.defn
    async def reconcile_access(self, data: ReconcileInput) -> ReconcileReport:
        raise NotImplementedError


INTERFACES = (AdmissionInterface, AccessInterface, AuditInterface, AssignmentInterface, ReconcileInterface)
