"""A PostgreSQL store for tests where several processes share it (SQLite will not do)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from pim.store import Store
from tests import postgres


@pytest_asyncio.fixture
async def pg_store(postgres_template):
    """A fresh, migrated PostgreSQL database (several processes share it: SQLite will not do)."""
    if postgres_template is None:
        pytest.skip(postgres.HOW_TO)
    name = await postgres_template.clone()
    opened = Store.open(postgres.database_url(name))
    yield opened
    await opened.close()
    await postgres_template.drop(name)
