"""A fresh, migrated SQLite store per test."""

from __future__ import annotations

import asyncio

import pytest

from pim.store.database import Store, upgrade


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'pim.db'}"


@pytest.fixture
async def store(db_url):
    # Alembic's env.py calls asyncio.run(), so it must not run on the test loop.
    await asyncio.to_thread(upgrade, db_url)
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()
