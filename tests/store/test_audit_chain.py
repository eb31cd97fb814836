"""The audit log's hash chain (pim/store/audit_chain.py, pim/store/audit.py).

First the pure chain: a log built in memory, then forged in each way the chain
must show. Then the store: every line appended is chained, on SQLite and on
PostgreSQL, also when many are appended at once. Then the real tools: Python's
sqlite3 module on the store's file (triggers dropped, lines deleted, changed and
inserted by hand) and `psql` on PostgreSQL (TRUNCATE and UPDATE refused, a forged
INSERT found); and the application's role, which may only read and insert."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pim.store import Store
from pim.store.admin import StoreError
from pim.store.audit_chain import GENESIS, canonical_json, head_of, row_hash, verify_chain
from pim.store.database import grant_app_role
from tests import postgres
from tests.conftest import TEST_SECRETS, postgres_store

T0 = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)


# --- the chain, in memory -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Line:
    id: int
    at: datetime
    action: str
    actor: str | None = None
    request_id: str | None = None
    group_id: str | None = None
    access: str | None = None
    principal_id: str | None = None
    details: dict = dataclasses.field(default_factory=dict)
    dedupe_key: str | None = None
    prev_hash: str | None = None
    row_hash: str | None = None


def chained(line: Line, prev: str) -> Line:
    return dataclasses.replace(line, prev_hash=prev, row_hash=row_hash(prev, line))


def log(count: int = 6, unchained: int = 0) -> list[Line]:
    """`count` lines, the first `unchained` of them written before the chain existed."""
    lines: list[Line] = []
    for n in range(1, count + 1):
        line = Line(n, T0 + timedelta(minutes=n), "granted", actor="bob", group_id="grp-ops", details={"n": n, "why": "é"})
        lines.append(line if n <= unchained else chained(line, head_of(lines)))
    return lines


def test_an_intact_log_verifies_and_its_head_is_the_last_hash():
    lines = log()
    report = verify_chain(lines)
    assert report.ok and report.rows == 6 and report.unchained == 0 and report.first_chained_id == 1
    assert (report.head_id, report.head_hash) == (6, lines[-1].row_hash)
    assert lines[0].prev_hash == GENESIS and all(b.prev_hash == a.row_hash for a, b in zip(lines, lines[1:]))
    assert len(lines[0].row_hash or "") == 64 and verify_chain([]).ok


def test_the_hash_covers_every_field_and_the_previous_hash():
    line = log(1)[0]
    assert canonical_json(line) == (
        '{"access":null,"action":"granted","actor":"bob","at":"2031-03-01T09:01:00.000000Z","dedupe_key":null,'
        '"details":{"n":1,"why":"é"},"group_id":"grp-ops","id":1,"principal_id":null,"request_id":null}'
    )
    hashes = {row_hash(GENESIS, line), row_hash("f" * 64, line)}
    for field, value in [("id", 2), ("at", T0), ("action", "denied"), ("actor", "eve"), ("request_id", "r"), ("group_id", "g")]:
        hashes.add(row_hash(GENESIS, dataclasses.replace(line, **{field: value})))
    for field, value in [("access", "owner"), ("principal_id", "p"), ("details", {"n": 2}), ("dedupe_key", "k")]:
        hashes.add(row_hash(GENESIS, dataclasses.replace(line, **{field: value})))
    assert len(hashes) == 12


def test_a_forged_row_in_the_middle_is_named():
    lines = log()
    lines[2] = dataclasses.replace(lines[2], actor="mallory")  # its hash left as it was
    report = verify_chain(lines)
    assert not report.ok and (report.problem.row_id, report.problem.code) == (3, "hash_mismatch")
    assert report.rows == 3  # stops at the first break


def test_a_changed_detail_is_named():
    lines = log()
    lines[4] = dataclasses.replace(lines[4], details={"n": 5, "why": "é", "approved_by": "alice"})
    assert (verify_chain(lines).problem.row_id, verify_chain(lines).problem.code) == (5, "hash_mismatch")


def test_a_deleted_middle_row_breaks_the_next_one():
    lines = log()
    del lines[2]  # ids jump from 2 to 4: row 4 names row 3's hash, which is gone
    problem = verify_chain(lines).problem
    assert (problem.row_id, problem.code) == (4, "missing_before") and "row 2" in problem.message


def test_a_row_inserted_by_hand_with_a_made_up_hash_is_named():
    lines = log()
    forged = Line(35, lines[2].at, "assignment_removed", actor="admin", prev_hash=lines[2].row_hash, row_hash="ab" * 32)
    problem = verify_chain(lines[:3] + [forged] + lines[3:]).problem
    assert (problem.row_id, problem.code) == (35, "hash_mismatch")


def test_a_row_inserted_with_a_computed_hash_is_named_by_the_one_after_it():
    lines = log()
    forged = chained(Line(35, lines[2].at, "assignment_removed", actor="admin"), lines[2].row_hash or "")
    problem = verify_chain(lines[:3] + [forged] + lines[3:]).problem
    assert (problem.row_id, problem.code) == (35, "inserted")


def test_a_backdated_row_is_named_even_with_a_computed_hash():
    lines = log()
    backdated = chained(Line(7, T0 - timedelta(days=30), "granted", actor="mallory"), lines[-1].row_hash or "")
    problem = verify_chain(lines + [backdated]).problem
    assert (problem.row_id, problem.code) == (7, "backdated")


def test_rows_from_before_the_chain_are_unchained_not_broken():
    lines = log(6, unchained=3)
    report = verify_chain(lines)
    assert report.ok and report.unchained == 3 and report.first_chained_id == 4
    # ... but the first chained row covers them: changing one shows.
    lines[1] = dataclasses.replace(lines[1], actor="mallory")
    assert (verify_chain(lines).problem.row_id, verify_chain(lines).problem.code) == (4, "missing_before")


def test_a_row_without_hash_after_chained_rows_is_a_break():
    lines = log()
    lines.append(Line(7, T0 - timedelta(days=1), "granted", actor="mallory"))  # a backdated INSERT by hand
    problem = verify_chain(lines).problem
    assert (problem.row_id, problem.code) == (7, "unchained")


def test_deleting_the_newest_rows_shows_only_against_a_recorded_head():
    lines = log()
    head = (6, lines[-1].row_hash or "")
    assert verify_chain(lines[:4]).ok  # what the chain alone cannot show
    assert verify_chain(lines, expected_head=head).ok
    problem = verify_chain(lines[:4], expected_head=head).problem
    assert (problem.row_id, problem.code) == (6, "head_missing")
    rewritten = lines[:5] + [chained(dataclasses.replace(lines[5], actor="mallory"), lines[4].row_hash or "")]
    assert verify_chain(rewritten).ok  # recomputed by someone who can write freely
    assert verify_chain(rewritten, expected_head=head).problem.code == "head_mismatch"


# --- the store writes the chain ---------------------------------------------------------------------


async def test_every_line_is_chained_and_dated_by_the_store(store):
    before = datetime.now(UTC)
    assert await store.append_audit(at=T0, action="requested", actor="alice", details={"duration": "PT1H"})
    assert await store.append_audit(action="approved", actor="bob", dedupe_key="req-1/approved")
    assert not await store.append_audit(action="approved", actor="bob", dedupe_key="req-1/approved")  # a retry
    await store.append_audit(at=datetime.now(UTC), action="granted", details={"at": ("a", 1)})
    rows = await store.audit()
    assert [r.action for r in rows] == ["requested", "approved", "granted"]
    assert rows[0].prev_hash == GENESIS and [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    # `at` is the store's clock at insert, never the caller's: theirs is kept as the event's.
    assert before <= rows[0].at <= rows[1].at <= rows[2].at <= datetime.now(UTC)
    assert rows[0].details == {"duration": "PT1H", "event_at": "2031-03-01T09:00:00.000000Z"}
    assert rows[2].details == {"at": ["a", 1]}  # stored as JSON reads it back, so the hash holds
    report = await store.verify_audit()
    assert report.ok and (report.rows, report.head_id, report.head_hash) == (3, rows[-1].id, rows[-1].row_hash)


async def test_concurrent_appends_keep_one_chain(store):
    keys = [f"k{n % 15}" for n in range(40)] + [None] * 20  # retries of 15 events, and 20 lines without a key
    outcomes = await asyncio.gather(*(store.append_audit(action="granted", dedupe_key=k) for k in keys), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    report = await store.verify_audit()
    assert report.ok and report.rows == 35 == sum(outcomes)


async def test_lines_written_before_the_chain_are_covered_by_the_first_chained_one(store):
    async with store.engine.begin() as connection:
        for n in range(3):
            await connection.execute(
                text("INSERT INTO audit_log (at, action, details) VALUES (:at, 'old_line', '{}')"),
                {"at": T0 + timedelta(hours=n)},
            )
    assert (await store.verify_audit()).unchained == 3
    await store.append_audit(action="granted")
    report = await store.verify_audit()
    assert report.ok and report.unchained == 3 and report.rows == 4
    first = (await store.audit())[-1]
    assert first.prev_hash == head_of((await store.audit())[:3]) != GENESIS


async def test_an_oidc_token_used_is_a_chained_line(store):
    assert await store.consume_mfa_token("alice", "tok-1", "req-1#run", T0)
    assert await store.consume_mfa_token("alice", "tok-1", "req-1#run", T0)  # the same request again
    assert not await store.consume_mfa_token("mallory", "tok-1", "req-2#run", T0)
    (line,) = await store.audit()
    assert line.action == "mfa_token_used" and line.row_hash and (await store.verify_audit()).ok


async def test_appends_from_two_processes_on_one_sqlite_file_keep_one_chain(tmp_path, migrated_template):
    """`pim dev`'s worker and a `pim` command are two processes on one file."""
    path = tmp_path / "pim.db"
    path.write_bytes(migrated_template.read_bytes())
    url = f"sqlite+aiosqlite:///{path}"
    script = (
        "import asyncio, sys\n"
        "from pim.store import Store\n"
        "async def main():\n"
        "    store = Store.open(sys.argv[1])\n"
        "    await asyncio.gather(*(store.append_audit(action='granted', actor=sys.argv[2]) for _ in range(30)))\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [subprocess.Popen([_python(), "-c", script, url, name]) for name in ("one", "two", "three")]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    store = Store.open(url)
    try:
        report = await store.verify_audit()
    finally:
        await store.close()
    assert report.ok and report.rows == 90


def _python() -> str:
    import sys

    return sys.executable


# --- by hand, with sqlite3 --------------------------------------------------------------------------


@pytest.fixture
async def sqlite_log(tmp_path, migrated_template):
    """A SQLite store with five chained lines; yields the store and its file."""
    path = tmp_path / "pim.db"
    path.write_bytes(migrated_template.read_bytes())
    store = Store.open(f"sqlite+aiosqlite:///{path}", secrets=TEST_SECRETS)
    for n in range(5):
        await store.append_audit(action="granted", actor="bob", group_id="grp-ops", details={"n": n})
    yield store, path
    await store.close()


def by_hand(path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for statement in statements:
            db.execute(statement)


async def test_sqlite_dropping_the_trigger_then_deleting_a_line_shows(sqlite_log):
    store, path = sqlite_log
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        by_hand(path, "DELETE FROM audit_log WHERE id = 3")
    by_hand(path, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id = 3")
    problem = (await store.verify_audit()).problem
    assert (problem.row_id, problem.code) == (4, "missing_before")


async def test_sqlite_changing_a_line_around_the_trigger_shows(sqlite_log):
    store, path = sqlite_log
    by_hand(path, "DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    assert (await store.verify_audit()).problem.row_id == 2


async def test_sqlite_backdated_inserts_by_hand_show(sqlite_log):
    store, path = sqlite_log
    by_hand(
        path,
        "INSERT INTO audit_log (at, action, actor, details) VALUES ('2020-01-01 00:00:00.000000', 'granted', 'mallory', '{}')",
    )
    assert ((await store.verify_audit()).problem.row_id, (await store.verify_audit()).problem.code) == (6, "unchained")
    by_hand(path, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id = 6")
    last = (await store.audit())[-1]
    by_hand(  # before the first line (id 0), claiming to start the chain, with a made-up hash
        path,
        "INSERT INTO audit_log (id, at, action, actor, details, prev_hash, row_hash) VALUES "
        f"(0, '2020-01-01 00:00:00.000000', 'granted', 'mallory', '{{}}', '{GENESIS}', '{last.row_hash}')",
    )
    problem = (await store.verify_audit()).problem
    assert (problem.row_id, problem.code) == (0, "hash_mismatch")


# --- PostgreSQL, with psql ----------------------------------------------------------------------------


def psql(url: str, statement: str, user: str | None = None) -> subprocess.CompletedProcess:
    parsed = make_url(url)
    command = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    command += ["-U", user or parsed.username or "postgres", "-d", parsed.database or "postgres", "-c", statement]
    env = {"PGPASSWORD": parsed.password or "", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
async def pg_log(postgres_template):
    async with postgres_store(postgres_template) as store:
        for n in range(5):
            await store.append_audit(action="granted", actor="bob", group_id="grp-ops", details={"n": n})
        yield store


async def test_postgresql_refuses_truncate_and_update(pg_log):
    for statement in ("TRUNCATE audit_log", "TRUNCATE audit_log CASCADE", "UPDATE audit_log SET actor = 'mallory'"):
        done = psql(pg_log.url, statement)
        assert done.returncode != 0 and "append-only" in done.stderr, (statement, done.stderr)
    assert (await pg_log.verify_audit()).rows == 5


async def test_postgresql_a_forged_insert_is_found(pg_log):
    last = (await pg_log.audit())[-1]
    done = psql(
        pg_log.url,
        "INSERT INTO audit_log (at, action, actor, details, prev_hash, row_hash) VALUES "
        f"('2020-01-01T00:00:00Z', 'granted', 'mallory', '{{}}', '{last.row_hash}', '{'ab' * 32}')",
    )
    assert done.returncode == 0, done.stderr
    problem = (await pg_log.verify_audit()).problem
    assert problem.code == "hash_mismatch" and problem.row_id > last.id


async def test_postgresql_a_deletion_by_the_owner_around_the_triggers_is_found(pg_log):
    done = psql(pg_log.url, "ALTER TABLE audit_log DISABLE TRIGGER USER; DELETE FROM audit_log WHERE id = 3")
    assert done.returncode == 0, done.stderr
    problem = (await pg_log.verify_audit()).problem
    assert (problem.row_id, problem.code) == (4, "missing_before")


# --- the application's role on PostgreSQL -------------------------------------------------------------


@pytest.fixture
async def app_role(postgres_template):
    """A fresh store and a login role for the application, granted by `grant_app_role`
    (what `pim db upgrade` does with PIM_DATABASE_APP_ROLE); both dropped afterwards."""
    if postgres_template is None:
        pytest.skip(postgres.HOW_TO)
    role = f"pim_app_{uuid.uuid4().hex[:8]}"
    name = await postgres_template.clone()
    owner_url = postgres.database_url(name)
    async with postgres_template.engine.connect() as connection:
        await connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'app'"))
    try:
        await grant_app_role(owner_url, role)
        app_url = make_url(owner_url).set(username=role, password="app").render_as_string(hide_password=False)
        yield owner_url, app_url, role
    finally:
        await postgres_template.drop(name)
        async with postgres_template.engine.connect() as connection:
            await connection.execute(text(f"DROP ROLE IF EXISTS {role}"))


async def test_the_app_role_may_only_read_and_insert_the_audit(app_role):
    owner_url, app_url, role = app_role
    store = Store.open(app_url, secrets=TEST_SECRETS)
    try:
        # The application works as it does: lines appended (chained), read, verified; other tables written.
        for n in range(3):
            await store.append_audit(action="granted", actor="bob", details={"n": n})
        await store.add_principal("carol", "user", display_name="Carol", roles=["User Administrator"])
        assert [r.action for r in await store.audit()] == ["granted"] * 3 and (await store.verify_audit()).ok
    finally:
        await store.close()
    for statement, refusal in [
        ("UPDATE audit_log SET actor = 'mallory'", "permission denied"),
        ("DELETE FROM audit_log", "permission denied"),
        ("TRUNCATE audit_log", "permission denied"),
        ("DROP TRIGGER audit_log_no_update ON audit_log", "must be owner"),
        ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner"),
    ]:
        done = psql(app_url, statement)
        assert done.returncode != 0 and refusal in done.stderr, (statement, done.stderr)
    assert psql(app_url, "SELECT count(*) FROM audit_log").returncode == 0


async def test_grants_refuse_a_missing_role_the_owner_and_sqlite(app_role, tmp_path):
    owner_url, _, _ = app_role
    with pytest.raises(StoreError, match="does not exist"):
        await grant_app_role(owner_url, "pim_app_nobody")
    with pytest.raises(StoreError, match="owns the tables"):
        await grant_app_role(owner_url, make_url(owner_url).username or "postgres")
    with pytest.raises(StoreError, match="PostgreSQL only"):
        await grant_app_role(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "pim_app")
