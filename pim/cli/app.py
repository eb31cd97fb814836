"""The `pim` application (Typer), whose commands are imported only when they run.

A command's module is imported when that command runs: `pim groups list` loads
the store but never Temporal's client or the worker, and `pim --help` lists the
commands from the table below without importing any of them.
tests/cli/test_lazy_imports.py checks that the table says what the commands say
and that nothing heavy is imported. (`pim status ID` usually takes a quicker way
still: pim/cli/quick.py.)"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from pim.cli.errors import CliError

if TYPE_CHECKING:
    from typer._click.core import Command  # Typer's own Click

# name: (module, attribute, the first line of its help). The attribute is a command
# function or a typer.Typer of subcommands; the order is the order of `pim --help`.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "dev": ("pim.cli.dev", "dev", "Run the embedded system: Temporal dev server, worker and store."),
    "worker": ("pim.cli.dev", "worker", "Run a worker against an existing Temporal server and database (PIM_* settings)."),
    "api": (
        "pim.cli.api",
        "api",
        "Serve the HTTP API: Microsoft Graph's PIM for Groups resources and /api (PIM_API_HOST:PIM_API_PORT).",
    ),
    "login": (
        "pim.cli.login",
        "login",
        "Sign in to the HTTP API (PIM_API_URL) with the OIDC device flow; the other commands then act as you.",
    ),
    "logout": ("pim.cli.login", "logout", "Forget the tokens of `pim login` for PIM_API_URL."),
    "auth": ("pim.cli.login", "auth_app", "The token of `pim login`, for curl and SDKs."),
    "request": ("pim.cli.requests", "request", "Ask for membership (or ownership) of GROUP; prints the request id."),
    "approve": ("pim.cli.requests", "approve", "Approve a pending request (refused with the reason when not allowed)."),
    "deny": ("pim.cli.requests", "deny", "Deny a pending request (refused with the reason when not allowed)."),
    "cancel": ("pim.cli.requests", "cancel", "Cancel a request that is pending approval or scheduled."),
    "deactivate": ("pim.cli.requests", "deactivate", "End an active activation early."),
    "extend": (
        "pim.cli.requests",
        "extend",
        "Extend an active activation (within the policy maximum unless an approver extends).",
    ),
    "status": ("pim.cli.requests", "status", "Show a request: state, approvals, times, violations."),
    "requests": ("pim.cli.requests", "requests", "List requests, newest first."),
    "bootstrap": ("pim.cli.admin", "bootstrap", "Create the first Global Administrator of an empty tenant (once)."),
    "assign": (
        "pim.cli.admin",
        "assign",
        "Make PRINCIPAL eligible for (or actively hold) membership or ownership of GROUP; prints the assignment id.",
    ),
    "unassign": ("pim.cli.admin", "unassign", "Remove an assignment (not in its first 5 minutes)."),
    "members": (
        "pim.cli.admin",
        "members",
        "Who holds access to GROUP now, and where each access comes from (or, with --eligible, who may activate).",
    ),
    "audit": (
        "pim.cli.admin",
        "audit",
        "The audit log, oldest first: time, action, actor, target and details (reason, old and new values).",
    ),
    "health": (
        "pim.cli.admin",
        "health",
        "Check Temporal and the store (reachable, schema up to date); exit 1 when either fails.",
    ),
    "reconcile": (
        "pim.cli.admin",
        "reconcile",
        "Run the reconciler now (it also runs on its schedule) and print what it found.",
    ),
    "db": ("pim.cli.admin", "db_app", "The store's schema."),
    "users": ("pim.cli.admin", "users_app", "Users of the directory."),
    "roles": ("pim.cli.admin", "roles_app", "Directory roles."),
    "groups": ("pim.cli.admin", "groups_app", "Groups: create, onboard into PIM, offboard, list."),
    "assignments": ("pim.cli.admin", "assignments_app", "Assignments: list, extend, renew."),
    "policy": ("pim.cli.admin", "policy_app", "Activation and assignment policies."),
    "mfa": ("pim.cli.admin", "mfa_app", "TOTP enrolment."),
    "directory": ("pim.cli.directory", "directory_app", "The directory where access is granted (PIM_DIRECTORY)."),
    "sign": (
        "pim.cli.sign",
        "sign_app",
        "Print a signed payload (proof included) for `temporal workflow start/signal/update --input`.",
    ),
    "keys": ("pim.cli.sign", "keys_app", "Keys for a deployment."),
}


def load_command(name: str) -> Command:
    """The real command NAME: its module imported, its Typer turned into Click."""
    module, attribute, _ = COMMANDS[name]
    target: Any = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class Listed(TyperCommand):
    """What `pim --help` shows of a command that has not been imported. Anything
    else asked of it (a group's `commands`, for a tool that walks the tree) comes
    from the command itself, imported for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name, help=COMMANDS[name][2])

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_") or "name" not in self.__dict__:
            raise AttributeError(attribute)
        if "_loaded" not in self.__dict__:
            self.__dict__["_loaded"] = load_command(self.__dict__["name"])
        return getattr(self.__dict__["_loaded"], attribute)


class LazyGroup(TyperGroup):
    """The top-level group: every command is listed, and imported when it is the
    one that runs (`resolve_command`), or for its own `--help`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = {name: Listed(name) for name in COMMANDS}

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        if args and isinstance(self.commands.get(args[0]), Listed):
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    help="Just-in-time access to groups, on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _top() -> None:
    """Just-in-time access to groups, on Temporal."""


def run() -> None:
    """The application, with a CliError raised outside a command (async_command
    reports its own) as one line."""
    try:
        app()
    except CliError as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None
