"""The store tests use the shared `store` fixture (SQLite and PostgreSQL);
`db_url` is an empty SQLite file for the tests of the migrations themselves."""

from __future__ import annotations

import pytest


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'pim.db'}"
