"""Every workflow of the product, for the worker and the replay tests."""

from workflows.activation import GroupActivation
from workflows.assignment import AssignmentLifecycle
from workflows.reconcile import Reconcile

WORKFLOWS = [GroupActivation, AssignmentLifecycle, Reconcile]
