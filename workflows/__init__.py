"""Deterministic orchestration only: no I/O, no clock but workflow.now()."""

from workflows.activation import GroupActivation
from workflows.assignment import AssignmentLifecycle

WORKFLOWS = [GroupActivation, AssignmentLifecycle]

__all__ = ["AssignmentLifecycle", "GroupActivation", "WORKFLOWS"]
