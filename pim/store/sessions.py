"""Read sessions and write transactions, shared by every part of the store.

Every write is a transaction run by `transact(work)`, where `work` is a plain
function of a synchronous ORM session: it may read, then write, and its return
value comes back. The transaction commits when `work` returns and rolls back
when it raises. Reads are async sessions (`self.sessions()`), or, for those an
activation makes on every request, `read(work)`: on a SQLite file, `work` runs
whole in one of a few reader threads (SqliteReaders), with no hand-over to the
event loop between its statements.

**SQLite** has one writer at a time. Written as async sessions, a write
transaction held the database's write lock across a dozen hand-overs between
the event loop and aiosqlite's thread, each one waiting for its turn in a busy
event loop (about 5 ms a transaction under a burst of activations, against well
under 1 ms of work), and writers that met the lock taken slept in SQLite's busy
handler, which polls by sleeping (1, 2, 5, ... up to 100 ms at a time) instead
of being told when the lock is free (bench/profile_throughput.py measured both).
So on SQLite, `transact` hands `work` to one writer thread per Store, which
runs it from BEGIN IMMEDIATE (the write lock from the first statement, so that
reading before writing never fails to upgrade) to COMMIT without a hand-over,
and commits whatever queued meanwhile together (`SqliteWriter`): the writers of
this process queue in order for that thread, never in the busy handler, and
hold the lock only while they work. Another process (the command line beside
`pim dev`'s worker) still meets the lock in the busy handler (30 s).

**PostgreSQL** has row locks and many writers: `work` runs in an async
transaction of its own (`AsyncSession.run_sync`)."""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

T = TypeVar("T")
# Work in a write transaction (`transact`): recording or dropping a source of access, an audit line.
StoreWork = Callable[[Session], object]

# An ORM bulk DELETE looks, by default, for the rows it removes among every object
# the session holds, and a group commit's session holds a whole batch's. For the
# deletes of a revocation (memberships, grant rows, claims), which nothing in the
# transaction reads back by key: pass this to `Session.execute`.
UNSYNCED: dict[str, Any] = {"synchronize_session": False}

# SQLite in memory: every connection is a database of its own, so writes stay on
# the async engine's connection, one at a time per event loop.
_MEMORY_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()
# One writer at a time per SQLite database in this process, whichever Store writes.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI read while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass
class _Job:
    work: Callable[[Session], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    first: bool = False  # a revocation: committed ahead of what queued with it


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # its caller was cancelled: the work is done all the same
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class SqliteWriter:
    """The thread that runs a store's write transactions on a SQLite file.

    Group commit: the thread takes every transaction queued when it is free (at
    most MAX_BATCH) and runs them one after the other in one database
    transaction, committed once; only then are their callers told. Should any of
    them raise (a unique key a retried activity meets again), the whole batch
    is rolled back and each runs again alone, so that each gets its own outcome:
    a `work` function may therefore run twice, and touches nothing but its
    session. Under a burst, the cost of a commit (its fsync, and the hand-overs
    of the GIL around every call into SQLite) is shared by every transaction
    that queued meanwhile; alone, a transaction is committed as soon as it is
    done. Revocations (`transact(..., first=True)`) that queued are committed
    first, in a transaction of their own, and their callers told: when a
    hundred expire together, access is not left in place while audit lines and
    notifications are written."""

    MAX_BATCH = 100

    def __init__(self, url: str, on_connect: Callable[..., None]) -> None:
        parsed = make_url(url)
        self.path = parsed.database or ""
        self.engine: Engine = create_engine(
            parsed.set(drivername="sqlite"), connect_args={"timeout": 30, "check_same_thread": False}
        )
        event.listen(self.engine, "connect", on_connect)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        with _FILE_LOCKS_GUARD:
            self.lock = _FILE_LOCKS.setdefault(self.path, threading.Lock())
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="pim-store-writer", daemon=True)
        self.thread.start()

    async def run(self, work: Callable[[Session], T], first: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.jobs.put(_Job(work, future, loop, first))
        return await future

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            head = self.jobs.get()
            if head is None:
                return
            batch = [head]
            while len(batch) < self.MAX_BATCH:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit_and_tell([job for job in batch if job.first])
            self._commit_and_tell([job for job in batch if not job.first])

    def _commit_and_tell(self, batch: list[_Job]) -> None:
        if not batch:
            return
        for job, (ok, value) in zip(batch, self._commit(batch)):
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, ok, value)
            except RuntimeError:  # its event loop is closed: nobody waits for it
                pass

    def _commit(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; (True, result) or (False, error) for each
        job. When anything in it fails, nothing of it is kept, and each job runs again
        alone, in a transaction of its own, to get its own outcome."""
        if len(batch) > 1:
            try:
                return [(True, value) for value in self._transaction([job.work for job in batch])]
            except Exception:  # noqa: BLE001 - told to each job when it runs alone
                pass
        outcomes: list[tuple[bool, Any]] = []
        for job in batch:
            try:
                outcomes.append((True, self._transaction([job.work])[0]))
            except Exception as error:  # noqa: BLE001 - this job's error, for its caller
                outcomes.append((False, error))
        return outcomes

    def _transaction(self, works: list[Callable[[Session], Any]]) -> list[Any]:
        with self.lock, self.sessions() as session:
            session.execute(text("BEGIN IMMEDIATE"))
            values = [work(session) for work in works]
            session.commit()
            return values

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self.engine.dispose()


class SqliteReaders:
    """The threads that run a store's reads on a SQLite file, each read in a
    session of its own (WAL: readers never wait for the writer)."""

    THREADS = 4

    def __init__(self, url: str, on_connect: Callable[..., None]) -> None:
        self.engine: Engine = create_engine(
            make_url(url).set(drivername="sqlite"),
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=self.THREADS,
        )
        event.listen(self.engine, "connect", on_connect)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.executor = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="pim-store-reader")

    def _run(self, work: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return work(session)

    async def run(self, work: Callable[[Session], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._run, work)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def insert_new(session: Session, model: type[Any], **values: Any) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING, in `work`: True when the row was written,
    False when a row with the same key (or another unique value) was there
    already. One statement where a look-up and an insert took two, and no
    IntegrityError to fail the transaction with."""
    statement = _insert_ignoring(session.get_bind().dialect.name, model.__table__)
    return cast(CursorResult[Any], session.execute(statement, values)).rowcount == 1


@functools.cache
def _insert_ignoring(dialect: str, table: Table) -> Any:
    """The statement, built once per table (Core: its result has a row count)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


class Sessions:
    sessions: async_sessionmaker[AsyncSession]
    url: str
    is_postgres: bool
    _writer: SqliteWriter | None
    _readers: SqliteReaders | None

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in a read session of its own and return what it
        returns: on a SQLite file, in a reader thread from start to end (no hand-over
        to the event loop between its statements)."""
        if self.is_postgres or is_memory_sqlite(self.url):
            async with self.sessions() as session:
                return await session.run_sync(work)
        if self._readers is None:
            self._readers = SqliteReaders(self.url, sqlite_pragmas)
        return await self._readers.run(work)

    async def transact(self, work: Callable[[Session], T], first: bool = False) -> T:
        """Run `work(session)` in a write transaction and return what it returns.
        Never call `transact` from inside `work`. `first`: a revocation, which the
        SQLite writer commits ahead of the transactions queued with it."""
        if self.is_postgres:
            async with self.sessions.begin() as session:
                return await session.run_sync(work)
        if is_memory_sqlite(self.url):
            locks = _MEMORY_LOCKS.setdefault(asyncio.get_running_loop(), {})
            async with locks.setdefault(self.url, asyncio.Lock()), self.sessions.begin() as session:
                await session.execute(text("BEGIN IMMEDIATE"))
                return await session.run_sync(work)
        if self._writer is None:
            self._writer = SqliteWriter(self.url, sqlite_pragmas)
        return await self._writer.run(work, first)

    def _close_threads(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._readers is not None:
            self._readers.close()
            self._readers = None
