"""What every command shares: settings, connections, one-line errors, output."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pim.client import PimClient
from pim.domain.models import violations_from_validation_error
from pim.operations import Refused
from pim.runtime.codec import PayloadKeyError
from pim.runtime.settings import PimSettings, load_settings
from pim.runtime.temporal import connect_options
from pim.store import Store
from pim.store.admin import StoreError

T = TypeVar("T")


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def settings() -> PimSettings:
    return load_settings()


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; any refusal becomes one line on stderr and a non-zero exit."""
    try:
        return asyncio.run(make())
    except CliError as error:
        _fail(str(error), error.exit_code)
    except ValidationError as error:
        _fail("; ".join(v.message for v in violations_from_validation_error(error)), 2)
    except (StoreError, Refused, PayloadKeyError) as error:
        _fail(str(error), 1)
    except KeyError as error:
        if "binary/encrypted" in str(error):  # a payload written with the codec, read without it
            _fail("the payloads are encrypted: set PIM_PAYLOAD_KEYS as the workers have it", 1)
        raise
    except WorkflowAlreadyStartedError as error:
        _fail(f"a request with id {error.workflow_id} is already running", 1)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        _fail(f"refused: {getattr(cause, 'message', None) or cause}", 1)
    except WorkflowQueryFailedError as error:
        _fail(f"the request could not answer: {error}", 1)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            if "already completed" in error.message:
                _fail("the request has already ended (see `pim status`)", 1)
            _fail(f"not found: {error.message}", 1)
        _fail(f"Temporal: {error.message}", 1)
    except OperationalError as error:
        if "no such table" in str(error):
            _fail(f"the store at {settings().database_url} has no schema: run `pim db upgrade` (or `pim dev`)", 1)
        _fail(f"store: {error.orig}", 1)
    except RuntimeError as error:
        if "connect" in str(error).lower():
            _fail(f"cannot reach Temporal at {temporal_target()} (is `pim dev` or the server running?)", 1)
        raise
    raise AssertionError("unreachable")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@asynccontextmanager
async def open_store():
    url = settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").expanduser().exists():
        raise CliError(f"no store at {parsed.database} (set PIM_DATABASE_URL, run `pim dev`, or `pim db upgrade`)")
    store = Store.open(url)
    try:
        yield store
    finally:
        await store.close()


def temporal_target() -> str:
    try:
        return connect_options(settings())["target_host"]
    except ValueError:
        return settings().temporal_address


async def pim_client() -> PimClient:
    try:
        return await PimClient.connect(settings())
    except ValueError as error:  # a TLS file that cannot be read, a half-given certificate pair
        raise CliError(str(error), 2) from None
    except RuntimeError as error:
        raise CliError(f"cannot reach Temporal at {temporal_target()} (is `pim dev` or the server running?)") from error


def emit_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def parse_instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{field}: {text!r} is not an ISO 8601 instant", 2) from None
    if value.tzinfo is None:
        raise CliError(f"{field}: give a time zone, e.g. 2026-11-28T15:00:00Z", 2)
    return value


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
