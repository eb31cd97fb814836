"""Every log line an activity writes carries the activity's context: workflow id,
run id, activity type and attempt from Temporal, and what the input tells of the
request (request_id, group_id, access, principal_id, state). Bound as structlog
context variables for the duration of the activity, then reset, so that lines
from activities running side by side never mix (each runs in its own task)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

# Input fields worth a log field: AccessChange, AuditRecord, AdmitInput and its request,
# AssignmentEnd's plan. `final_state` (AccessChange) is logged as `state`.
FIELDS = {
    "request_id": "request_id",
    "group_id": "group_id",
    "access": "access",
    "principal_id": "principal_id",
    "assignment_id": "assignment_id",
    "final_state": "state",
    "action": "action",
}
NESTED = ("request", "plan")


def input_fields(args: Any) -> dict[str, str]:
    """The context fields found in an activity's arguments (models or plain objects)."""
    found: dict[str, str] = {}
    for arg in args:
        for source in (arg, *(getattr(arg, name, None) for name in NESTED)):
            if source is None or isinstance(source, (str, bytes, int, float, dict, list)):
                continue
            for attribute, field in FIELDS.items():
                value = getattr(source, attribute, None)
                if value is not None and field not in found:
                    found[field] = value.value if isinstance(value, Enum) else str(value)
    return found


def activity_fields(args: Any) -> dict[str, Any]:
    info = activity.info()
    fields: dict[str, Any] = {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity": info.activity_type,
        "attempt": info.attempt,
    }
    try:
        fields.update(input_fields(args))
    except Exception:  # noqa: BLE001 - log context must never fail an activity
        pass
    return {key: value for key, value in fields.items() if value is not None}


class LogContextInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LogContextInbound(next)


class _LogContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with structlog.contextvars.bound_contextvars(**activity_fields(input.args)):
            return await self.next.execute_activity(input)
