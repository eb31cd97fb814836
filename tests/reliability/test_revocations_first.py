"""Revocations first (pim/store/revocations.py): a close revokes at once, and
writes its record (claim released, audit line) once no other revocation of the
process is under way, or after a bounded wait; nothing is skipped either way."""

from __future__ import annotations

import asyncio

from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from pim.directories.store_directory import StoreDirectory
from pim.store.revocations import RevocationTraffic
from tests.reliability.test_access_retried import MEMBER, expiry, granted


async def test_bookkeeping_waits_for_the_revocations_under_way_then_goes():
    traffic = RevocationTraffic()
    await asyncio.wait_for(traffic.settled(), 0.1)  # none under way: at once
    first, second, done = asyncio.Event(), asyncio.Event(), []

    async def revocation(release: asyncio.Event) -> None:
        async with traffic.under_way():
            await release.wait()

    revocations = [asyncio.create_task(revocation(first)), asyncio.create_task(revocation(second))]
    await asyncio.sleep(0)
    waiting = asyncio.create_task(traffic.settled(patience=10))
    waiting.add_done_callback(lambda _: done.append(True))
    first.set()
    await asyncio.sleep(0.05)
    assert not done, "went while a revocation was still under way"
    second.set()
    await asyncio.wait_for(waiting, 1)
    await asyncio.gather(*revocations)


async def test_bookkeeping_waits_no_longer_than_its_patience():
    traffic = RevocationTraffic()
    stuck = asyncio.Event()

    async def revocation() -> None:
        async with traffic.under_way():
            await stuck.wait()  # a directory that does not answer

    task = asyncio.create_task(revocation())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await traffic.settled(patience=0.2)
    assert 0.2 <= loop.time() - began < 2
    assert not traffic._waiters, "a waiter that gave up stays listed"
    stuck.set()
    await task


async def test_a_close_revokes_at_once_and_records_once_the_other_revocation_is_done(demo):
    await granted(demo, "req-1#run-1")
    close = AccessActivities(demo, StoreDirectory(demo)).close_activation
    other = demo.revocations.under_way()
    await other.__aenter__()  # another activation's revocation, still under way
    closing = asyncio.create_task(ActivityEnvironment().run(close, expiry("req-1#run-1")))
    for _ in range(100):
        if not await demo.has_membership("grp-dev", MEMBER, "alice"):
            break
        await asyncio.sleep(0.01)
    assert not await demo.has_membership("grp-dev", MEMBER, "alice"), "the revocation waited"
    await asyncio.sleep(0.2)
    assert not closing.done()
    assert [line.action for line in await demo.audit(request_id="req-1")] == []
    await other.__aexit__(None, None, None)
    await asyncio.wait_for(closing, 5)
    assert [line.action for line in await demo.audit(request_id="req-1")] == ["activation_ended"]
    assert (await demo.verify_audit()).ok
