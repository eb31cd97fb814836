"""Counted grants stay right when several workers change the same access at once.

Each "worker" is a Store of its own (its own engine and connection pool), as
two worker processes would have; on PostgreSQL the connections are real and
concurrent. Each race is run many times: a missing lock shows up as a
membership left behind with no source, or taken away while a source lives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial

import pytest

from pim.directories.sources import confer, withdraw
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType
from pim.store import Store
from pim.store.grants import add_grant_in, remove_grant_in

MEMBER = AccessType.member
ROUNDS = 25


@pytest.fixture
async def workers(store):
    """Two more Stores on the same database: three workers in all."""
    others = [Store.open(store.url, secrets=store.secrets) for _ in range(2)]
    await store.add_principal("alice")
    await store.onboard_group("grp-ops", "security", by="admin")
    yield [store, *others]
    for other in others:
        await other.close()


async def grant(worker: Store, source: str) -> None:
    await confer(
        worker,
        StoreDirectory(worker),
        "grp-ops",
        MEMBER,
        "alice",
        record_source=partial(
            add_grant_in,
            group_id="grp-ops",
            access=MEMBER,
            principal_id="alice",
            source_kind="activation",
            source_id=source,
            starts_at=datetime.now(UTC),
        ),
    )


async def revoke(worker: Store, source: str) -> None:
    await withdraw(
        worker,
        StoreDirectory(worker),
        "grp-ops",
        MEMBER,
        "alice",
        source_id=source,
        at=datetime.now(UTC),
        drop_source=partial(remove_grant_in, source_kind="activation", source_id=source),
    )


async def state(store: Store) -> tuple[bool, list[str]]:
    sources = sorted(g.source_id for g in await store.live_grants("grp-ops", MEMBER, datetime.now(UTC), "alice"))
    return await store.has_membership("grp-ops", MEMBER, "alice"), sources


async def test_two_activations_ending_together_leave_nothing_behind(workers):
    first, second, _ = workers
    for round_ in range(ROUNDS):
        a, b = f"a{round_}", f"b{round_}"
        await grant(first, a)
        await grant(second, b)
        await asyncio.gather(revoke(first, a), revoke(second, b))
        assert await state(first) == (False, []), f"round {round_}: membership left without a source"


async def test_a_grant_racing_a_revoke_keeps_the_access_it_grants(workers):
    first, second, _ = workers
    for round_ in range(ROUNDS):
        old, new = f"old{round_}", f"new{round_}"
        await grant(first, old)
        await asyncio.gather(revoke(first, old), grant(second, new))
        assert await state(first) == (True, [new]), f"round {round_}: the new grant lost its membership"
        await revoke(second, new)
        assert await state(first) == (False, [])


async def test_many_workers_granting_and_revoking_end_consistent(workers):
    sources = [f"s{i}" for i in range(12)]
    await asyncio.gather(*(grant(workers[i % 3], s) for i, s in enumerate(sources)))
    assert await state(workers[0]) == (True, sorted(sources))
    keep = sources[-1]
    await asyncio.gather(*(revoke(workers[i % 3], s) for i, s in enumerate(sources) if s != keep))
    assert await state(workers[0]) == (True, [keep])
    await revoke(workers[1], keep)
    assert await state(workers[0]) == (False, [])
