"""The administrator's actions on assignmentScheduleRequests (adminAssign,
adminRemove, adminExtend, adminRenew): active assignments, through the operations
of pim/operations/assignments.py, which authorize and audit them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pim.api.errors import GraphError

if TYPE_CHECKING:
    from pim.api.auth import Caller
    from pim.api.graph.activations import AssignmentScheduleRequest
    from pim.api.graph.requests import AssignmentScheduleRequestIn
    from pim.api.services import ApiServices


async def create(api: ApiServices, caller: Caller, body: AssignmentScheduleRequestIn) -> AssignmentScheduleRequest:
    raise GraphError(501, "NotImplemented", f"{body.action} is not available yet")
