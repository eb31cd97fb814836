"""PostgreSQL for tests: a migrated template database, cloned for each test.

PIM_TEST_POSTGRES_URL (an admin URL such as
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) turns the PostgreSQL
runs on and makes them mandatory: CI sets it, and a server that cannot be
reached then fails the run. Without it, PostgreSQL runs happen when a server
answers at the default URL and are skipped, saying how to enable them, when none does."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from pim.store.database import upgrade_async

ENV = "PIM_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
HOW_TO = (
    f"PostgreSQL tests skipped: no server at {DEFAULT_ADMIN_URL}. Start one, or set {ENV} to an admin URL "
    "(CI sets it, and then they are mandatory)."
)


def admin_url() -> str:
    return os.environ.get(ENV) or DEFAULT_ADMIN_URL


def required() -> bool:
    return bool(os.environ.get(ENV))


def database_url(name: str) -> str:
    return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)


class PostgresTemplate:
    """Creates `pim_tpl_<id>` once (migrated), then a fresh clone per test."""

    def __init__(self) -> None:
        self.engine = create_async_engine(admin_url(), isolation_level="AUTOCOMMIT")
        self.template = f"pim_tpl_{uuid.uuid4().hex[:8]}"

    async def start(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {self.template}"))
        await upgrade_async(database_url(self.template))

    async def clone(self) -> str:
        name = f"pim_t_{uuid.uuid4().hex[:10]}"
        async with self.engine.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
        return name

    async def drop(self, name: str) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    async def close(self) -> None:
        await self.drop(self.template)
        await self.engine.dispose()


async def open_template() -> PostgresTemplate | None:
    """The template, or None (after deciding whether that is a skip or a failure)."""
    template = PostgresTemplate()
    try:
        await template.start()
    except (OSError, Exception) as error:  # connection refused, auth, missing driver
        await template.engine.dispose()
        if required():
            pytest.fail(f"{ENV} is set but PostgreSQL at {admin_url()} cannot be used: {error}", pytrace=False)
        return None
    return template


async def waiting_for_access_locks(connection) -> list[str]:
    """The connections waiting for an access lock (`Store.access_lock`) right now,
    by application name: it names their process as Temporal names a worker
    ("pim <pid>@<host>"). A local grant runs inside a workflow task, so this, not
    Temporal's pending activities, shows it in flight, and on which worker."""
    rows = await connection.execute(
        text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND NOT l.granted"
        )
    )
    return [name for (name,) in rows]
