"""The audit log is append-only in the store itself: a trigger refuses any
UPDATE or DELETE of an audit line, whoever connects to the database."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from pim.store import Store
from pim.store.database import upgrade

PG_ADMIN_URL = os.environ.get("PIM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


async def assert_audit_is_append_only(store: Store) -> None:
    await store.append_audit(at=datetime.now(UTC), action="assignment_created", actor="admin", group_id="grp-ops",
                             details={"assignment_id": "asg-1"})
    for statement in ("UPDATE audit_log SET action = 'nothing_happened'", "DELETE FROM audit_log"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with store.engine.begin() as connection:
                await connection.execute(text(statement))
    rows = await store.audit()
    assert [(r.action, r.actor, r.details) for r in rows] == [("assignment_created", "admin", {"assignment_id": "asg-1"})]


async def test_sqlite_store_refuses_to_change_or_delete_audit_lines(store):
    await assert_audit_is_append_only(store)


async def test_postgresql_store_refuses_to_change_or_delete_audit_lines():
    admin = Store.open(PG_ADMIN_URL)
    name = f"pim_audit_{uuid.uuid4().hex[:8]}"
    try:
        async with admin.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f"CREATE DATABASE {name}"))
    except (OSError, DBAPIError) as error:
        await admin.close()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(error).__name__}); "
                    "start it or set PIM_TEST_POSTGRES_URL")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    store = Store.open(url)
    try:
        await asyncio.to_thread(upgrade, url)
        await assert_audit_is_append_only(store)
    finally:
        await store.close()
        async with admin.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await admin.close()
