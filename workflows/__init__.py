"""Deterministic orchestration only: no I/O, no clock but workflow.now().

Kept empty on purpose: the workflow sandbox re-imports a workflow's package for
every workflow run it starts, so the list of workflows lives in workflows/registry.py."""
