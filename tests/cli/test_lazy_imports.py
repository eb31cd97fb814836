"""A command loads what it needs and no more (pim/cli/app.py, pim/cli/quick.py):
`pim --help` imports none of the commands, `pim status` neither the store nor
the worker, and the quick path of `pim status` neither Typer nor pydantic. Each
check runs in a fresh interpreter and reads its sys.modules: a guard against an
import that slows every call again, with no clock involved."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from pim.cli.app import COMMANDS, app, load_command

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "127.0.0.1:1"
HEAVY = ("sqlalchemy", "alembic", "temporalio.worker", "temporalio.testing", "worker", "workflows.activation", "pim.operations")


def modules_after(code: str, *env: tuple[str, str]) -> set[str]:
    """The modules a fresh interpreter holds once it has run `code` (which may exit)."""
    program = f"""
import atexit, json, os, sys
def _report():
    sys.__stderr__.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
    sys.__stderr__.flush()
atexit.register(_report)
_leave = os._exit  # what the CLI leaves with (pim/runtime/process.py): atexit is skipped
os._exit = lambda code: (_report(), _leave(code))
{code}
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_"))}
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "PIM_TEMPORAL_ADDRESS": UNREACHABLE, **dict(env)},
    )
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def loaded(modules: set[str], prefix: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for name in modules)


def test_help_imports_no_command():
    modules = modules_after("import sys; sys.argv = ['pim', '--help']; from pim.cli.main import main; main()")
    assert "pim.cli.app" in modules
    for heavy in (*HEAVY, "temporalio", "pydantic_settings", "pim.cli.requests", "pim.cli.admin", "pim.cli.dev"):
        assert not loaded(modules, heavy), heavy


def test_status_loads_neither_the_store_nor_the_worker():
    # The full path (a TLS setting sends it there): Temporal's client, not the store.
    full = modules_after(
        "import sys; sys.argv = ['pim', 'status', 'activation/grp-ops/member/alice']; from pim.cli.main import main; main()",
        ("PIM_TEMPORAL_TLS", "false"),
    )
    assert loaded(full, "temporalio.client") and loaded(full, "pim.cli.requests")
    for heavy in (*HEAVY, "pim.cli.admin", "pim.identity.proofs", "rich"):
        assert not loaded(full, heavy), heavy


def test_the_quick_status_loads_neither_typer_nor_pydantic():
    quick = modules_after(
        "import sys; sys.argv = ['pim', 'status', 'activation/grp-ops/member/alice', '--json']; "
        "from pim.cli.main import main; main()"
    )
    assert loaded(quick, "pim.cli.quick") and loaded(quick, "temporalio.service")
    for heavy in (*HEAVY, "typer", "click", "pydantic", "temporalio.client", "pim.cli.app", "pim.domain"):
        assert not loaded(quick, heavy), heavy


def test_a_store_listing_loads_no_operation_and_no_worker():
    modules = modules_after("import sys; sys.argv = ['pim', 'groups', 'list']; from pim.cli.main import main; main()")
    assert loaded(modules, "pim.cli.admin")
    for heavy in ("temporalio.worker", "worker", "pim.operations", "alembic", "pim.cli.dev"):
        assert not loaded(modules, heavy), heavy


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_help_is_the_commands_own(name):
    """`pim --help` shows the table's line; the command, once loaded, says the same."""
    command = load_command(name)
    assert command.name == name
    assert (command.help or "").split("\n\n")[0].strip() == COMMANDS[name][2]


def test_help_lists_every_command_and_a_command_runs_from_the_list():
    listed = CliRunner().invoke(app, ["--help"])
    assert listed.exit_code == 0, listed.output
    for name in COMMANDS:
        assert f" {name} " in listed.stdout
    own = CliRunner().invoke(app, ["groups", "--help"])
    assert own.exit_code == 0 and "onboard" in own.stdout
    unknown = CliRunner().invoke(app, ["statu"])
    assert unknown.exit_code == 2 and "status" in unknown.output  # "Did you mean 'status'?"
    # A tool that walks the tree gets the real commands (loaded for it).
    tree = typer.main.get_command(app)
    assert "upgrade" in tree.commands["db"].commands and "verify" in tree.commands["audit"].commands
