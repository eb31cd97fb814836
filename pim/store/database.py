"""Engine, sessions and migrations. `Store` gathers the operations of the
modules beside this one."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from pim.store.access import AccessOperations
from pim.store.admin import AdminOperations, StoreError
from pim.store.assignments import AssignmentOperations
from pim.store.audit import AuditOperations
from pim.store.grants import GrantOperations
from pim.store.identity import IdentityOperations, SecretBox
from pim.store.revocations import RevocationTraffic
from pim.store.sessions import SqliteReaders, SqliteWriter, sqlite_pragmas

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _prepare_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


# SQLite serves one process: a lock per (database, target) in this process is enough there.
_PROCESS_LOCKS: dict[tuple[str, str], asyncio.Lock] = {}


class Store(AdminOperations, AssignmentOperations, AccessOperations, GrantOperations, IdentityOperations, AuditOperations):
    def __init__(self, url: str, engine: AsyncEngine, secrets: SecretBox | None = None) -> None:
        self.url = url
        self.secrets = secrets  # reads and writes TOTP secrets; None: this process may not
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.is_postgres = make_url(url).get_backend_name() == "postgresql"
        self._lock_engine: AsyncEngine | None = None
        self._writer: SqliteWriter | None = None  # created by the first write on a SQLite file
        self._readers: SqliteReaders | None = None  # and the first read through `read`
        self.revocations = RevocationTraffic()  # closes write their records once revocations are done

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
            self._lock_engine = create_async_engine(
                self.url, pool_size=10, max_overflow=40, pool_pre_ping=True, **_named_connections(self.url)
            )
        async with self._lock_engine.connect() as connection:
            async with connection.begin():
                await connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
                yield

    @classmethod
    def open(cls, url: str, secrets: SecretBox | None = None) -> "Store":
        _prepare_sqlite_file(url)
        is_sqlite = make_url(url).get_backend_name() == "sqlite"
        options = {"connect_args": {"timeout": 30}} if is_sqlite else {"pool_pre_ping": True, **_named_connections(url)}
        engine = create_async_engine(url, **options)
        if is_sqlite:
            event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return cls(url, engine, secrets)

    async def close(self) -> None:
        self._close_threads()
        await self.engine.dispose()
        if self._lock_engine is not None:
            await self._lock_engine.dispose()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", app_role: str | None = None) -> None:
    """Apply migrations (blocking; call from a thread inside an event loop); then,
    given the application's role (PIM_DATABASE_APP_ROLE), grant it what it needs."""
    from alembic import command

    _prepare_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
    if app_role:
        asyncio.run(grant_app_role(url, app_role))


async def upgrade_async(url: str, app_role: str | None = None) -> None:
    await asyncio.to_thread(upgrade, url, "head", app_role)


async def grant_app_role(url: str, role: str) -> None:
    """PostgreSQL: let `role`, the one workers and operations connect as, use the
    store's tables, and the audit log by SELECT and INSERT only: it can neither
    change, delete nor truncate a line, nor drop the triggers (only the tables'
    owner can, the role migrations run as). Run after every upgrade: a new table
    is granted too. Refuses a role that owns the tables or is a superuser."""
    if make_url(url).get_backend_name() != "postgresql":
        raise StoreError("app_role_unsupported", "PIM_DATABASE_APP_ROLE applies to PostgreSQL only: SQLite has no roles")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            found = (
                await connection.execute(
                    text(
                        "SELECT r.rolsuper, pg_has_role(r.oid, t.tableowner, 'MEMBER') AS owns, current_schema() AS schema "
                        "FROM pg_roles r, pg_tables t "
                        "WHERE r.rolname = :role AND t.tablename = 'audit_log' AND t.schemaname = current_schema()"
                    ),
                    {"role": role},
                )
            ).first()
            if found is None:
                raise StoreError(
                    "app_role_missing", f"role {role} does not exist (or the store has no audit_log): create it first"
                )
            if found.rolsuper or found.owns:
                raise StoreError(
                    "app_role_owns",
                    f"role {role} is a superuser or owns the tables: it could drop the audit log's triggers; "
                    "run migrations as the owner and let the application connect as another role",
                )
            quote = connection.dialect.identifier_preparer.quote
            who, schema = quote(role), quote(found.schema)
            for statement in (
                f"GRANT USAGE ON SCHEMA {schema} TO {who}",
                f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {who}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {who}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {who}",
                # Append-only for the application: read and insert, nothing else.
                f"REVOKE ALL ON audit_log FROM {who}, PUBLIC",
                f"GRANT SELECT, INSERT ON audit_log TO {who}",
                f"REVOKE ALL ON alembic_version FROM {who}",
                f"GRANT SELECT ON alembic_version TO {who}",  # `pim health` reads the schema's version
            ):
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _named_connections(url: str) -> dict:
    """PostgreSQL (asyncpg): each connection names the process it serves, as
    Temporal names a worker (pid@host), so that pg_stat_activity and pg_locks
    tell which worker holds or waits for a lock."""
    if make_url(url).get_driver_name() != "asyncpg":
        return {}
    return {"connect_args": {"server_settings": {"application_name": f"pim {os.getpid()}@{socket.gethostname()}"}}}
