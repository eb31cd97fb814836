"""Deterministic orchestration only: no I/O, no clock but workflow.now()."""

from workflows.activation import GroupActivation
from workflows.assignment import AssignmentLifecycle
from workflows.reconcile import Reconcile

WORKFLOWS = [GroupActivation, AssignmentLifecycle, Reconcile]

__all__ = ["AssignmentLifecycle", "GroupActivation", "Reconcile", "WORKFLOWS"]
