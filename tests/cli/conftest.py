"""The command line in-process (Typer's CliRunner): stdout is not a terminal, as
for a script. Settings come from the environment each command reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from pim.cli.main import app
from tests.conftest import CLI_SETTINGS, sqlite_store

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "127.0.0.1:1"


@dataclass
class Pim:
    database_url: str
    temporal_address: str = UNREACHABLE

    def __call__(self, *args: str):
        env = {
            **CLI_SETTINGS,
            "PIM_DATABASE_URL": self.database_url,
            "PIM_TEMPORAL_ADDRESS": self.temporal_address,
            "PIM_PAYLOAD_KEYS": None,
        }
        return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def pim(tmp_path: Path, monkeypatch) -> Pim:
    """`pim ...` on a store file in tmp_path (not created: `pim db upgrade` makes it)."""
    monkeypatch.chdir(tmp_path)  # no .pim/ of the developer's own `pim dev` is used
    return Pim(f"sqlite+aiosqlite:///{tmp_path / 'pim.db'}")


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def one_error_line(result, exit_code: int) -> str:
    """The refusal as a user sees it: exit code, nothing on stdout, one line on stderr."""
    assert result.exit_code == exit_code, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    return result.stderr.strip()


@pytest_asyncio.fixture
async def store(tmp_path, migrated_template):
    """The store the server tests use: SQLite only, as `pim dev` does (`pim mfa code` works on it only)."""
    async with sqlite_store(tmp_path, migrated_template) as fresh:
        yield fresh
