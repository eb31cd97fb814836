"""On a SQLite file, one writer thread commits the transactions of this process,
those that queued together at once. Revocations queued among them are
committed first: access does not stay in place while others' audit lines and
notifications are written."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import text

from pim.store import Store
from tests.conftest import TEST_SECRETS


async def test_a_revocation_is_committed_ahead_of_the_transactions_queued_with_it(db_url):
    store = Store.open(db_url, secrets=TEST_SECRETS)
    committed: list[str] = []
    started, release = threading.Event(), threading.Event()

    def work(name: str):
        def run(session) -> str:
            if name == "under way":
                started.set()
                release.wait(timeout=10)  # the writer is busy while the others queue
            session.execute(text("SELECT 1"))
            committed.append(name)
            return name

        return run

    try:
        under_way = asyncio.create_task(store.transact(work("under way")))
        while not started.is_set():
            await asyncio.sleep(0.01)
        queued = [asyncio.create_task(store.transact(work(f"audit line {i}"))) for i in range(3)]
        revocation = asyncio.create_task(store.transact(work("revocation"), first=True))
        await asyncio.sleep(0.2)  # all four queued behind the one under way
        release.set()
        assert await asyncio.gather(under_way, *queued, revocation) == [
            "under way",
            "audit line 0",
            "audit line 1",
            "audit line 2",
            "revocation",
        ]
        assert committed == ["under way", "revocation", "audit line 0", "audit line 1", "audit line 2"]
    finally:
        await store.close()
