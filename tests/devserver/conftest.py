"""The dev-server tests drive the command line on the development store, which
is SQLite (`pim mfa code` works on it only): they use SQLite alone."""

import shutil

import pytest_asyncio

from pim.store import Store


@pytest_asyncio.fixture
async def store(tmp_path, migrated_template):
    path = tmp_path / "pim.db"
    shutil.copy(migrated_template, path)
    opened = Store.open(f"sqlite+aiosqlite:///{path}")
    yield opened
    await opened.close()
