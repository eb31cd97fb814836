"""Every side effect of the product: store lookups, checks, grant and revoke,
audit and notifications. Activities never import workflows."""

from __future__ import annotations

from activities.access import AccessActivities
from activities.admission import AdmissionActivities
from activities.assignments import AssignmentActivities
from activities.audit import AuditActivities
from activities.reconcile import ReconcileActivities
from pim.directories.interface import Directory
from pim.directories.store_directory import StoreDirectory
from pim.store import Store


def build_activities(store: Store, directory: Directory | None = None) -> list:
    """All activity callables for a worker; tests pass a fault-injecting directory."""
    directory = directory or StoreDirectory(store)
    access = AccessActivities(store, directory)
    assignments = AssignmentActivities(store, directory)
    return [
        assignments.assignment_took_effect,
        assignments.assignment_window_changed,
        assignments.assignment_end,
        AdmissionActivities(store).admit_request,
        access.grant_access,
        access.close_activation,
        AuditActivities(store).record_event,
        ReconcileActivities(store, directory).reconcile_access,
    ]
