"""`pim directory`: the directory that grants write to (PIM_DIRECTORY), seen from PIM."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import AsyncIterator

import typer
from temporalio.exceptions import ApplicationError

from pim.cli import remote
from pim.cli.common import CliError, async_command, open_store, settings
from pim.cli.output import emit_json, print_table
from pim.directories import DirectoryNotAvailable, build_directory
from pim.directories.interface import Directory
from pim.directories.sync import DirectoryDiff, compare, expected_holders
from pim.domain.models import AccessType
from pim.runtime.settings import PimSettings
from pim.store import Store
from pim.store.views import directory_diff_view

directory_app = typer.Typer(help="The directory where access is granted (PIM_DIRECTORY).", no_args_is_help=True)
UNCHECKED = 2  # the exit code when no comparison could be made (1 means: out of sync)


@asynccontextmanager
async def cli_directory(config: PimSettings, store: Store) -> AsyncIterator[Directory]:
    """The configured directory (closed after, for those with connections), or a
    one-line error for a setting that is missing or wrong."""
    try:
        directory = build_directory(config, store)
    except (DirectoryNotAvailable, ValueError) as error:
        raise CliError(f"directory: {error}", 2) from None
    try:
        yield directory
    finally:
        close = getattr(directory, "aclose", None)
        if close is not None:
            await close()


@directory_app.command("diff")
@async_command
async def diff(
    group: str = typer.Argument(...),
    owner: bool = typer.Option(False, "--owner", help="owners, not members"),
    json_: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> int:
    """Compare who the directory holds in GROUP with who should hold it (a live assignment
    or activation). Exit 0 when in sync, 1 when not, 2 when the comparison could not be made."""
    access = AccessType.owner if owner else AccessType.member
    result = await compare_with_directory(group, access)
    if json_:
        emit_json(directory_diff_view(result))
    else:
        print_table(
            ("finding", "principal"),
            [("missing", p) for p in result.missing] + [("unexpected", p) for p in result.unexpected],
        )
        typer.echo(
            f"{group} {access.value}: missing={len(result.missing)} unexpected={len(result.unexpected)} "
            f"ok={len(result.ok)}" + (" (in sync)" if result.in_sync else "")
        )
    return 0 if result.in_sync else 1


async def compare_with_directory(group: str, access: AccessType) -> DirectoryDiff:
    if remote.in_api_mode():
        return await compare_through_api(group, access)
    config = settings()
    async with open_store() as store:
        if await store.group(group) is None:
            raise CliError(f"no group {group!r}", UNCHECKED)
        async with cli_directory(config, store) as directory:
            try:
                held = await directory.holders(group, access)
            except ApplicationError as error:
                raise CliError(f"directory ({config.directory}): {error.message}", UNCHECKED) from None
        expected = await expected_holders(store, group, access, datetime.now(UTC))
    return compare(group, access, expected=expected, held=held)


async def compare_through_api(group: str, access: AccessType) -> DirectoryDiff:
    """The API's comparison, with its directory (API mode): whatever fails, no comparison was made."""
    try:
        found = await remote.call("GET", f"/api/directory/diff/{remote.path_of(group)}", params={"access": access.value})
    except CliError as error:
        raise CliError(str(error), UNCHECKED) from None
    return DirectoryDiff.model_validate(found)
