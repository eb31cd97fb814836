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
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Coroutine, ParamSpec

import typer

from pim.cli.errors import (  # noqa: F401 - what every command module takes from here
    CliError,
    EncryptedPayloads,
    StoreWithoutSchema,
    TemporalUnreachable,
    error_line,
)

# What a command needs is imported inside it (pim/cli/app.py): `pim status` never
# loads the store, `pim groups list` never loads Temporal's client.
if TYPE_CHECKING:
    from temporalio.client import Client

    from pim.client import PimClient
    from pim.runtime.settings import PimSettings
    from pim.store import Store

P = ParamSpec("P")


def settings() -> PimSettings:
    from pim.runtime.settings import load_settings

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
    from pim.domain.durations import parse_duration

    try:
        return parse_duration(text, field)
    except ValueError as error:
        raise CliError(str(error), 2) from None


def mfa_code_option(code: str | None) -> str | None:
    """--mfa-code as given, once it has the shape of a TOTP code (6 digits): a
    malformed one is refused before anything is sent, and never echoed."""
    if code is not None and not (len(code) == 6 and code.isascii() and code.isdigit()):
        raise CliError("--mfa-code: a TOTP code is 6 digits", 2)
    return code


# --- the store ----------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """A database URL fit for a message: its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def store_location(url: str) -> str:
    """Where a store is, for a message: a SQLite file as an absolute path (the default
    one, .pim/pim.db, depends on the working directory), anything else as its URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return str(Path(parsed.database).expanduser().resolve())
    return shown_url(url)


@asynccontextmanager
async def open_store() -> AsyncIterator[Store]:
    """The store of PIM_DATABASE_URL, checked to have a schema before any command uses
    it. When PIM_DATABASE_URL is unset, the store is the working directory's
    .pim/pim.db: a refusal or failure then names it (`... (store: /abs/.pim/pim.db)`),
    since the same command run from another directory acts on another store."""
    from sqlalchemy.engine import make_url

    from pim.identity.secrets import configured_cipher
    from pim.store import Store

    config = settings()
    url = config.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").expanduser().exists():
        raise CliError(f"no store at {store_location(url)} (set PIM_DATABASE_URL, run `pim dev`, or `pim db upgrade`)")
    # TOTP secrets are readable only where their key is (a local `pim dev`, or PIM_MFA_SECRET_KEY).
    store = Store.open(url, secrets=configured_cipher(config))
    try:
        await _require_schema(store)
        yield store
    except Exception as error:
        known = error_line(error) if "database_url" not in config.model_fields_set else None
        if known is None or known[1] != 1 or isinstance(error, StoreWithoutSchema):
            raise
        raise CliError(f"{known[0]} (store: {store_location(url)})", known[1]) from error
    finally:
        await store.close()


async def _require_schema(store: Store) -> None:
    try:
        async with store.engine.connect() as connection:
            revision = await connection.run_sync(_schema_revision)
    except OSError as error:  # the database server refused or is unknown (the driver's own error)
        raise CliError(f"cannot reach the store at {shown_url(store.url)}: {error}") from None
    if revision is None:
        raise StoreWithoutSchema(shown_url(store.url))


def _schema_revision(connection: Any) -> str | None:
    """What alembic's MigrationContext.get_current_revision reads, without loading
    alembic: the revision in alembic_version, None when there is none."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


# --- Temporal -----------------------------------------------------------------------------


def temporal_target() -> str:
    from pim.runtime.temporal import connect_options

    try:
        return connect_options(settings())["target_host"]
    except ValueError:
        return settings().temporal_address


async def temporal_client(config: PimSettings | None = None) -> Client:
    """A client with the settings' connection options and data converter. Without
    PIM_PAYLOAD_KEYS, a payload the workers encrypted is refused as such."""
    from temporalio.client import Client

    from pim.runtime.temporal import connect_with

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
    options["data_converter"] = dataclasses.replace(client.data_converter, payload_codec=refuse_encrypted())
    return Client(**options)


async def pim_client() -> PimClient:
    from pim.client import PimClient
    from pim.identity import totp as mfa
    from pim.identity.proofs import configured_signing_key

    config = settings()
    try:
        key = mfa.seal_key(config)
        signer = configured_signing_key(config)  # local mode: `pim dev`'s key; production: the API (docs/security.md)
    except ValueError as error:
        raise CliError(str(error), 2) from None
    return PimClient(await temporal_client(config), config.task_queue, key, signer)


def refuse_encrypted() -> Any:
    """The codec of a client without keys: payloads go out as they are, and an
    encrypted one coming back (its `encoding` says so) raises EncryptedPayloads."""
    from typing import Sequence

    from temporalio.api.common.v1 import Payload
    from temporalio.converter import PayloadCodec

    from pim.runtime.codec import ENCODING

    class RefuseEncrypted(PayloadCodec):
        async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
            return list(payloads)

        async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
            if any(payload.metadata.get("encoding") == ENCODING for payload in payloads):
                raise EncryptedPayloads()
            return list(payloads)

    return RefuseEncrypted()
