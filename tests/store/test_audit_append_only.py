"""The audit log is append-only in the store itself: a trigger refuses any
UPDATE or DELETE of an audit line, and on PostgreSQL a TRUNCATE, whoever
connects to the database (SQLite and PostgreSQL, through the shared `store`
fixture). What the triggers cannot stop, the hash chain shows
(tests/store/test_audit_chain.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError


async def test_the_store_refuses_to_change_or_delete_audit_lines(store):
    await store.append_audit(
        at=datetime.now(UTC), action="assignment_created", actor="admin", group_id="grp-ops", details={"assignment_id": "asg-1"}
    )
    statements = ["UPDATE audit_log SET action = 'nothing_happened'", "DELETE FROM audit_log"]
    if store.is_postgres:  # TRUNCATE fires no row trigger: a statement trigger refuses it (migration 0005)
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with store.engine.begin() as connection:
                await connection.execute(text(statement))
    rows = await store.audit()
    assert [(r.action, r.actor, r.details) for r in rows] == [("assignment_created", "admin", {"assignment_id": "asg-1"})]
