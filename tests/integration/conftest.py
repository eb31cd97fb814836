"""A PostgreSQL store for tests where several processes share it (SQLite will not do)."""

from __future__ import annotations

import pytest_asyncio

from tests.conftest import postgres_store


@pytest_asyncio.fixture
async def pg_store(postgres_template):
    """A fresh, migrated PostgreSQL database."""
    async with postgres_store(postgres_template) as fresh:
        yield fresh
