"""The failures a command reports as one line, `error: ...`, and their exit codes
(pim/cli/common.py). Imported by the quick path of `pim status` too
(pim/cli/quick.py): nothing here loads Typer, pydantic or Temporal."""

from __future__ import annotations

import sys
from typing import Any


class CliError(Exception):
    """A failure the command reports as it is: one line, and its exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TemporalUnreachable(CliError):
    def __init__(self, target: str) -> None:
        super().__init__(f"cannot reach Temporal at {target} (is `pim dev` or the server running?)")
        self.target = target


class StoreWithoutSchema(CliError):
    def __init__(self, shown_url: str) -> None:
        super().__init__(f"the store at {shown_url} has no schema: run `pim db upgrade` (or `pim dev`)")


class EncryptedPayloads(CliError):
    def __init__(self) -> None:
        super().__init__("the payloads are encrypted: set PIM_PAYLOAD_KEYS as the workers have it")


def error_line(error: Exception) -> tuple[str, int] | None:
    """The one-line message and exit code of a failure, by its type; None for an
    unknown one (a bug: its traceback is shown). The types are those of the modules
    this command loaded: a failure of a module it never imported cannot happen."""
    ValidationError = _loaded("pydantic_core", "ValidationError")
    StoreError = _loaded("pim.store.admin", "StoreError")
    Refused = _loaded("pim.operations.context", "Refused")
    PayloadKeyError = _loaded("pim.runtime.codec", "PayloadKeyError")
    WorkflowAlreadyStartedError = _loaded("temporalio.exceptions", "WorkflowAlreadyStartedError")
    WorkflowUpdateFailedError = _loaded("temporalio.client", "WorkflowUpdateFailedError")
    WorkflowQueryFailedError = _loaded("temporalio.client", "WorkflowQueryFailedError")
    RPCError = _loaded("temporalio.service", "RPCError")
    OperationalError = _loaded("sqlalchemy.exc", "OperationalError")
    match error:
        case CliError():
            return str(error), error.exit_code
        case ValidationError():
            from pim.domain.models import violations_from_validation_error

            return "; ".join(v.message for v in violations_from_validation_error(error)), 2
        case StoreError() | Refused() | PayloadKeyError():
            return str(error), 1
        case WorkflowAlreadyStartedError():
            return f"a request with id {error.workflow_id} is already running", 1
        case WorkflowUpdateFailedError():
            return f"refused: {getattr(error.cause, 'message', None) or error.cause}", 1
        case WorkflowQueryFailedError():
            return f"the request could not answer: {error}", 1
        case RPCError() if error.status == sys.modules["temporalio.service"].RPCStatusCode.NOT_FOUND:
            return f"not found: {error.message}", 1
        case RPCError():
            return f"Temporal: {error.message}", 1
        case OperationalError():
            return f"store: {error.orig}", 1
    return None


class _NeverRaised(Exception):
    """The type of a failure whose module was never loaded."""


def _loaded(module: str, name: str) -> Any:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised
