"""The audit log is append-only in the store itself: a trigger refuses any
UPDATE or DELETE of an audit line, whoever connects to the database
(SQLite and PostgreSQL, through the shared `store` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError


async def test_the_store_refuses_to_change_or_delete_audit_lines(store):
    await store.append_audit(
        at=datetime.now(UTC), action="assignment_created", actor="admin", group_id="grp-ops", details={"assignment_id": "asg-1"}
    )
    for statement in ("UPDATE audit_log SET action = 'nothing_happened'", "DELETE FROM audit_log"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with store.engine.begin() as connection:
                await connection.execute(text(statement))
    rows = await store.audit()
    assert [(r.action, r.actor, r.details) for r in rows] == [("assignment_created", "admin", {"assignment_id": "asg-1"})]
