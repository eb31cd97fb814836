"""The `pim` command line (SPEC section 4)."""

from __future__ import annotations

import typer

from pim.cli import admin, dev, directory, requests, sign
from pim.cli.common import CliError
from pim.runtime.process import exit_cleanly

app = typer.Typer(
    help="Just-in-time access to groups, on Temporal.", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
)
app.command()(dev.dev)
app.command()(dev.worker)
app.add_typer(admin.db_app, name="db")
requests.register(app)
app.command()(admin.bootstrap)
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.roles_app, name="roles")
app.add_typer(admin.groups_app, name="groups")
app.command()(admin.assign)
app.command()(admin.unassign)
app.add_typer(admin.assignments_app, name="assignments")
app.add_typer(admin.policy_app, name="policy")
app.command()(admin.members)
app.add_typer(admin.mfa_app, name="mfa")
app.command()(admin.audit)
app.command()(admin.health)
app.command()(admin.reconcile)
app.add_typer(directory.directory_app, name="directory")
app.add_typer(sign.sign_app, name="sign")
app.add_typer(sign.keys_app, name="keys")


def _entry() -> None:
    try:
        app()
    except CliError as error:  # raised outside a command (async_command reports its own)
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None


def main() -> None:
    exit_cleanly(_entry)
