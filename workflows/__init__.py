"""Deterministic orchestration only: no I/O, no clock but workflow.now()."""

from workflows.activation import GroupActivation

WORKFLOWS = [GroupActivation]

__all__ = ["GroupActivation", "WORKFLOWS"]
