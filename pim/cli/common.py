"""What every command shares: settings, connections, one-line errors.

A command is an `async def` decorated with `async_command`: it runs on its own
event loop, and every known failure becomes one line on stderr (`error: ...`)
and exit code 2 (malformed arguments) or 1 (a refusal or failure). Failures are
recognised by their type, or by a typed error raised where the condition is
detected (Temporal unreachable, a store without schema, encrypted payloads
without keys, a request that has ended); never by the text of a message."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Coroutine, ParamSpec, Sequence

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.converter import PayloadCodec
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pim.client import PimClient
from pim.domain.durations import parse_duration
from pim.domain.models import violations_from_validation_error
from pim.identity import totp as mfa
from pim.identity.proofs import configured_signing_key
from pim.identity.secrets import configured_cipher
from pim.operations import Refused
from pim.runtime.codec import ENCODING, PayloadKeyError
from pim.runtime.settings import PimSettings, load_settings
from pim.runtime.temporal import connect_options, connect_with
from pim.store import Store
from pim.store.admin import StoreError

P = ParamSpec("P")


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


class RequestEnded(CliError):
    def __init__(self) -> None:
        super().__init__("the request has already ended (see `pim status`)")


def settings() -> PimSettings:
    return load_settings()


# --- running a command ------------------------------------------------------------------


def async_command(command: Callable[P, Coroutine[Any, Any, int | None]]) -> Callable[P, None]:
    """Let a Typer command be an `async def`: run it with asyncio.run, exit with the
    code it returns (None: 0), and turn every known failure into one line on stderr.
    The wrapper keeps the command's signature (`__wrapped__`, which `inspect.signature`
    follows), from which Typer reads the options."""

    @functools.wraps(command)
    def run_command(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            code = asyncio.run(command(*args, **kwargs))
        except Exception as error:
            known = error_line(error)
            if known is None:
                raise
            message, exit_code = known
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(exit_code) from None
        if code:
            raise typer.Exit(code)

    return run_command


def error_line(error: Exception) -> tuple[str, int] | None:
    """The one-line message and exit code of a failure, by its type; None for an
    unknown one (a bug: its traceback is shown)."""
    match error:
        case CliError():
            return str(error), error.exit_code
        case ValidationError():
            return "; ".join(v.message for v in violations_from_validation_error(error)), 2
        case StoreError() | Refused() | PayloadKeyError():
            return str(error), 1
        case WorkflowAlreadyStartedError():
            return f"a request with id {error.workflow_id} is already running", 1
        case WorkflowUpdateFailedError():
            return f"refused: {getattr(error.cause, 'message', None) or error.cause}", 1
        case WorkflowQueryFailedError():
            return f"the request could not answer: {error}", 1
        case RPCError() if error.status == RPCStatusCode.NOT_FOUND:
            return f"not found: {error.message}", 1
        case RPCError():
            return f"Temporal: {error.message}", 1
        case OperationalError():
            return f"store: {error.orig}", 1
    return None


# --- arguments --------------------------------------------------------------------------


def parse_instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{field}: {text!r} is not an ISO 8601 instant", 2) from None
    if value.tzinfo is None:
        raise CliError(f"{field}: give a time zone, e.g. 2026-11-28T15:00:00Z", 2)
    return value


def parse_duration_option(text: str, field: str = "duration") -> timedelta:
    try:
        return parse_duration(text, field)
    except ValueError as error:
        raise CliError(str(error), 2) from None


# --- the store ----------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """A database URL fit for a message: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


@asynccontextmanager
async def open_store() -> AsyncIterator[Store]:
    """The store of PIM_DATABASE_URL, checked to have a schema before any command uses it."""
    url = settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").expanduser().exists():
        raise CliError(f"no store at {parsed.database} (set PIM_DATABASE_URL, run `pim dev`, or `pim db upgrade`)")
    # TOTP secrets are readable only where their key is (a local `pim dev`, or PIM_MFA_SECRET_KEY).
    store = Store.open(url, secrets=configured_cipher(settings()))
    try:
        await _require_schema(store)
        yield store
    finally:
        await store.close()


async def _require_schema(store: Store) -> None:
    from alembic.runtime.migration import MigrationContext

    try:
        async with store.engine.connect() as connection:
            revision = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    except OSError as error:  # the database server refused or is unknown (the driver's own error)
        raise CliError(f"cannot reach the store at {shown_url(store.url)}: {error}") from None
    if revision is None:
        raise StoreWithoutSchema(shown_url(store.url))


# --- Temporal -----------------------------------------------------------------------------


def temporal_target() -> str:
    try:
        return connect_options(settings())["target_host"]
    except ValueError:
        return settings().temporal_address


async def temporal_client(config: PimSettings | None = None) -> Client:
    """A client with the settings' connection options and data converter. Without
    PIM_PAYLOAD_KEYS, a payload the workers encrypted is refused as such."""
    config = config or settings()
    try:
        client = await connect_with(config)
    except ValueError as error:  # a TLS file that cannot be read, a half-given certificate pair, a bad key list
        raise CliError(str(error), 2) from None
    except RuntimeError as error:  # what the SDK raises when the connection fails
        raise TemporalUnreachable(temporal_target()) from error
    if config.payload_keys:
        return client
    options = client.config()
    options["data_converter"] = dataclasses.replace(client.data_converter, payload_codec=RefuseEncrypted())
    return Client(**options)


async def pim_client() -> PimClient:
    config = settings()
    try:
        key = mfa.seal_key(config)
        signer = configured_signing_key(config)  # local mode: `pim dev`'s key; production: the API (docs/security.md)
    except ValueError as error:
        raise CliError(str(error), 2) from None
    return PimClient(await temporal_client(config), config.task_queue, key, signer)


class RefuseEncrypted(PayloadCodec):
    """The codec of a client without keys: payloads go out as they are, and an
    encrypted one coming back (its `encoding` says so) raises EncryptedPayloads."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if any(payload.metadata.get("encoding") == ENCODING for payload in payloads):
            raise EncryptedPayloads()
        return list(payloads)
