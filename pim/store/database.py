"""Engine, sessions and migrations. `Store` gathers the operations of the
modules beside this one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pim.store.access import AccessOperations
from pim.store.admin import AdminOperations
from pim.store.assignments import AssignmentOperations
from pim.store.audit import AuditOperations
from pim.store.identity import IdentityOperations, SecretBox

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _prepare_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


# SQLite serves one process: a lock per (database, target) in this process is enough there.
_PROCESS_LOCKS: dict[tuple[str, str], asyncio.Lock] = {}


class Store(AdminOperations, AssignmentOperations, AccessOperations, IdentityOperations, AuditOperations):
    def __init__(self, url: str, engine: AsyncEngine, secrets: SecretBox | None = None) -> None:
        self.url = url
        self.secrets = secrets  # reads and writes TOTP secrets; None: this process may not
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.is_postgres = make_url(url).get_backend_name() == "postgresql"
        self._lock_engine: AsyncEngine | None = None

    @asynccontextmanager
    async def access_lock(self, group_id: str, access: str, principal_id: str) -> AsyncIterator[None]:
        """Serializes every change of one (group, access, principal) across workers:
        deciding whether the last source is gone and writing the directory happen
        under it. PostgreSQL: a transaction-scoped advisory lock, on connections of
        their own so that lock holders never starve the pool they work with."""
        key = f"{group_id}/{access}/{principal_id}"
        if not self.is_postgres:
            async with _PROCESS_LOCKS.setdefault((self.url, key), asyncio.Lock()):
                yield
            return
        if self._lock_engine is None:
            self._lock_engine = create_async_engine(self.url, pool_size=10, max_overflow=40, pool_pre_ping=True)
        async with self._lock_engine.connect() as connection:
            async with connection.begin():
                await connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
                yield

    @classmethod
    def open(cls, url: str, secrets: SecretBox | None = None) -> "Store":
        _prepare_sqlite_file(url)
        is_sqlite = make_url(url).get_backend_name() == "sqlite"
        engine = create_async_engine(url, **({"connect_args": {"timeout": 30}} if is_sqlite else {"pool_pre_ping": True}))
        if is_sqlite:
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(url, engine, secrets)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._lock_engine is not None:
            await self._lock_engine.dispose()


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI read while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations (blocking; call from a thread inside an event loop)."""
    from alembic import command

    _prepare_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
