"""The dev-server tests drive the command line on the development store, which
is SQLite (`pim mfa code` works on it only): they use SQLite alone."""

import pytest_asyncio

from tests.conftest import sqlite_store


@pytest_asyncio.fixture
async def store(tmp_path, migrated_template):
    async with sqlite_store(tmp_path, migrated_template) as fresh:
        yield fresh
