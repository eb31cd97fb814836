"""The worker's activities: one implementation of each interface in
activities/interfaces.py, bound to the store and the directory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from activities.access import AccessActivities
from activities.admission import AdmissionActivities
from activities.assignments import AssignmentActivities
from activities.audit import AuditActivities
from activities.interfaces import INTERFACES
from activities.proofs import ProofActivities
from activities.reconcile import ReconcileActivities
from pim.directories.interface import Directory
from pim.directories.sources import in_store
from pim.directories.store_directory import StoreDirectory
from pim.identity.actors import ProofPolicy
from pim.store import Store


def interface_activities(interface: type) -> list[str]:
    """The activity names an interface declares (its public async methods)."""
    return [name for name, value in vars(interface).items() if not name.startswith("_") and callable(value)]


def build_activities(
    store: Store, proofs: ProofPolicy, directory: Directory | None = None, backstop_grace: timedelta = timedelta(seconds=60)
) -> list[Callable[..., Any]]:
    """Every activity of every interface, implemented; tests pass a fault-injecting directory."""
    directory = directory or StoreDirectory(store)
    implementations: list[object] = [
        ProofActivities(store, proofs),
        AdmissionActivities(store, proofs, grant_locally=in_store(directory, store)),
        AccessActivities(store, directory),
        AuditActivities(store),
        AssignmentActivities(store, directory),
        ReconcileActivities(store, directory, backstop_grace),
    ]
    activities = []
    for interface in INTERFACES:
        (implementation,) = [i for i in implementations if isinstance(i, interface)]
        activities += [getattr(implementation, name) for name in interface_activities(interface)]
    return activities
