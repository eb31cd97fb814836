"""How an activity's failure reaches a workflow. A regular activity's arrives as an
`ActivityError` whose cause is the activity's own error; a local activity's, in
the SDK this project runs (temporalio 1.35), as that error itself: the
`ApplicationError` the activity raised, or the one its retries ended with.
Every call site of a local activity catches both, so that a failing check ends
in the workflow's own verdict (fails closed), never in a failed workflow."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError

ACTIVITY_FAILURES = (ActivityError, ApplicationError)


def failure_message(error: ActivityError | ApplicationError) -> str:
    cause = error.cause if isinstance(error, ActivityError) else error
    return getattr(cause, "message", None) or str(cause or error)


def failure_type(error: ActivityError | ApplicationError) -> str | None:
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause.type if isinstance(cause, ApplicationError) else None
