"""`pim audit verify`: exit 0 on an intact log, 1 naming the first broken or
forged line (and `--json`); `pim audit` still lists; `pim db upgrade` grants the
application's role (PIM_DATABASE_APP_ROLE) on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from contextlib import closing

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import postgres
from tests.cli.conftest import Pim, ok, one_error_line


@pytest.fixture
def tenant(pim, tmp_path):
    """A tenant set up with the command line: a few audit lines, in a store file."""
    ok(pim("db", "upgrade"))
    ok(pim("bootstrap", "root"))
    for user in ("ann", "ben", "cat"):
        ok(pim("users", "add", user, "--as", "root"))
    ok(pim("groups", "onboard", "grp-web", "--kind", "security", "--as", "root"))
    return pim, tmp_path / "pim.db"


def by_hand(path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for statement in statements:
            db.execute(statement)


def ids(path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT id FROM audit_log ORDER BY id")]


def test_an_intact_log_verifies(tenant):
    pim, path = tenant
    out = ok(pim("audit", "verify"))
    count = len(ids(path))
    assert count >= 5 and out.startswith(f"audit log intact: {count} rows; head {ids(path)[-1]}:")
    report = json.loads(ok(pim("audit", "verify", "--json")))
    assert report["ok"] is True and report["rows"] == count and report["problem"] is None
    assert report["head"]["id"] == ids(path)[-1] and len(report["head"]["hash"]) == 64
    assert ok(pim("audit", "verify", "--expect", f"{report['head']['id']}:{report['head']['hash']}")) == out


def test_a_line_deleted_around_the_trigger_is_named(tenant):
    pim, path = tenant
    victim, after = ids(path)[2:4]
    by_hand(path, "DROP TRIGGER audit_log_no_delete", f"DELETE FROM audit_log WHERE id = {victim}")
    result = pim("audit", "verify")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"audit log broken at row {after} (missing_before): ")
    result = pim("audit", "verify", "--json")
    assert result.exit_code == 1
    problem = json.loads(result.stdout)["problem"]
    assert (problem["row_id"], problem["code"]) == (after, "missing_before")


def test_a_changed_line_and_a_forged_one_are_named(tenant):
    pim, path = tenant
    second = ids(path)[1]
    by_hand(path, "DROP TRIGGER audit_log_no_update", f"UPDATE audit_log SET actor = 'mallory' WHERE id = {second}")
    result = pim("audit", "verify")
    assert result.exit_code == 1 and f"row {second} (hash_mismatch)" in result.stdout, result.output
    by_hand(path, f"UPDATE audit_log SET actor = 'root' WHERE id = {second}")
    ok(pim("audit", "verify"))
    by_hand(  # backdated, by hand: no hash
        path, "INSERT INTO audit_log (at, action, actor, details) VALUES ('2020-01-01 00:00:00', 'user_added', 'root', '{}')"
    )
    result = pim("audit", "verify")
    assert result.exit_code == 1 and f"row {ids(path)[-1]} (unchained)" in result.stdout, result.output


def test_the_newest_lines_deleted_show_only_against_a_recorded_head(tenant):
    pim, path = tenant
    head = json.loads(ok(pim("audit", "verify", "--json")))["head"]
    by_hand(path, "DROP TRIGGER audit_log_no_delete", f"DELETE FROM audit_log WHERE id >= {ids(path)[-2]}")
    ok(pim("audit", "verify"))  # a consistent, shorter chain
    result = pim("audit", "verify", "--expect", f"{head['id']}:{head['hash']}")
    assert result.exit_code == 1 and f"row {head['id']} (head_missing)" in result.stdout, result.output
    assert "not ID:HASH" in one_error_line(pim("audit", "verify", "--expect", "12:nothex"), 2)


def test_lines_from_before_the_chain_are_reported_unchained(pim, tmp_path):
    ok(pim("db", "upgrade"))
    by_hand(tmp_path / "pim.db", "INSERT INTO audit_log (at, action, details) VALUES ('2026-01-01 00:00:00', 'old', '{}')")
    ok(pim("bootstrap", "root"))
    out = ok(pim("audit", "verify"))
    assert "1 rows written before the chain existed carry no hash of their own (unchained)" in out
    assert json.loads(ok(pim("audit", "verify", "--json")))["unchained"] == 1


def test_audit_still_lists_as_before(tenant):
    pim, _ = tenant
    lines = json.loads(ok(pim("audit", "--json")))
    assert [e["action"] for e in lines].count("user_added") == 3
    assert set(lines[0]) == {"at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details"}
    assert [e["action"] for e in json.loads(ok(pim("audit", "--group", "grp-web", "--json")))] == ["group_onboarded"]
    assert ok(pim("audit", "--principal", "ben")).splitlines()[0].split() == [
        "at",
        "action",
        "actor",
        "group",
        "principal",
        "details",
    ]
    assert pim("audit", "--json", "verify").exit_code == 2


# --- pim db upgrade and the application's role -----------------------------------------------------


def test_an_app_role_needs_postgresql(pim, monkeypatch):
    monkeypatch.setenv("PIM_DATABASE_APP_ROLE", "pim_app")
    assert "PostgreSQL only" in one_error_line(pim("db", "upgrade"), 1)


async def test_db_upgrade_grants_the_app_role_on_postgresql(postgres_template, monkeypatch, tmp_path):
    if postgres_template is None:
        pytest.skip(postgres.HOW_TO)
    role = f"pim_app_{uuid.uuid4().hex[:8]}"
    name = await postgres_template.clone()
    url = postgres.database_url(name)
    async with postgres_template.engine.connect() as connection:
        await connection.execute(text(f"CREATE ROLE {role} LOGIN"))
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("PIM_DATABASE_APP_ROLE", role)
        out = ok(await asyncio.to_thread(Pim(url), "db", "upgrade"))  # the command runs its own event loop
        assert out.splitlines() == ["database is up to date", f"role {role} may use it; the audit log by SELECT and INSERT only"]
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                granted = {
                    privilege: (
                        await connection.execute(text(f"SELECT has_table_privilege('{role}', 'audit_log', '{privilege}')"))
                    ).scalar()
                    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                }
                assignments = (
                    await connection.execute(text(f"SELECT has_table_privilege('{role}', 'assignments', 'UPDATE')"))
                ).scalar()
        finally:
            await engine.dispose()
        assert granted == {"SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False, "TRUNCATE": False}
        assert assignments is True
    finally:
        await postgres_template.drop(name)
        async with postgres_template.engine.connect() as connection:
            await connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
