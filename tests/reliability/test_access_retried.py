"""`grant_access` and `close_activation` are retried, so each may run again after
an attempt that did everything but report back. With the built-in directory, a
grant's membership, grant row and audit line are written in one transaction; a
close revokes first (membership and grant row), then releases the claim and
writes the line. A second run finds the line written, changes nothing and fails
nothing; one after a close that failed between its two steps finishes the
bookkeeping. Another live source keeps the membership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType, ActivationRequest, State
from pim.domain.status import AccessChange

MEMBER = AccessType.member
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


async def granted(store, source_id: str) -> None:
    await store.add_grant("grp-dev", MEMBER, "alice", source_kind="activation", source_id=source_id, starts_at=NOW)
    await store.set_membership("grp-dev", MEMBER, "alice", present=True)


def expiry(run_key: str) -> AccessChange:
    return AccessChange(
        request_id=run_key.split("#")[0],
        run_key=run_key,
        group_id="grp-dev",
        access=MEMBER,
        principal_id="alice",
        at=NOW,
        expires_at=NOW,
        granted=True,
        final_state=State.expired,
        reason="the activation reached its end",
    )


async def test_a_grant_run_again_after_it_succeeded_grants_once_and_writes_one_line(demo):
    request = ActivationRequest(group_id="grp-ops", access=MEMBER, principal_id="alice", duration=timedelta(hours=1))
    run_key = f"{request.workflow_id}#run-1"
    policy, version = await demo.policy("grp-ops", MEMBER)
    now = datetime.now(UTC)
    assert await demo.claim_activation("grp-ops", MEMBER, "alice", run_key, now) == run_key  # admitted
    change = AccessChange(
        request_id=request.workflow_id,
        run_key=run_key,
        group_id="grp-ops",
        access=MEMBER,
        principal_id="alice",
        at=now,
        expires_at=now + timedelta(hours=1),
        request=request,
        policy=policy,
        policy_version=version,
    )
    grant = AccessActivities(demo, StoreDirectory(demo)).grant_access
    await ActivityEnvironment().run(grant, change)
    await ActivityEnvironment().run(grant, change)  # the first attempt's report was lost
    assert await demo.has_membership("grp-ops", MEMBER, "alice")
    sources = await demo.live_grants("grp-ops", MEMBER, now, "alice")
    assert [(g.source_kind, g.source_id, g.ends_at) for g in sources] == [("activation", run_key, change.expires_at)]
    lines = await demo.audit(request_id=request.workflow_id)
    assert [line.action for line in lines] == ["access_granted"]
    assert (await demo.verify_audit()).ok


async def test_a_close_run_again_after_it_succeeded_revokes_once_and_writes_one_line(demo):
    await granted(demo, "req-1#run-1")
    close = AccessActivities(demo, StoreDirectory(demo)).close_activation
    await ActivityEnvironment().run(close, expiry("req-1#run-1"))
    await ActivityEnvironment().run(close, expiry("req-1#run-1"))  # the first attempt's report was lost
    assert not await demo.has_membership("grp-dev", MEMBER, "alice")
    assert await demo.other_live_sources("grp-dev", MEMBER, "alice", source_id="none", at=NOW) == []
    lines = await demo.audit(request_id="req-1")
    assert [(line.action, line.details["revoked"]) for line in lines] == [("activation_ended", "true")]
    assert (await demo.verify_audit()).ok


async def test_a_close_that_failed_after_revoking_has_revoked_and_its_retry_finishes_the_bookkeeping(demo, monkeypatch):
    run_key = "req-4#run-1"
    assert await demo.claim_activation("grp-dev", MEMBER, "alice", run_key, NOW) == run_key
    await granted(demo, run_key)
    write_line = demo.audit_in

    def store_gone(*args, **kwargs):
        raise ConnectionError("the store went away after the revocation")  # injected fault

    monkeypatch.setattr(demo, "audit_in", store_gone)
    close = AccessActivities(demo, StoreDirectory(demo)).close_activation
    with pytest.raises(ConnectionError):
        await ActivityEnvironment().run(close, expiry(run_key))
    assert not await demo.has_membership("grp-dev", MEMBER, "alice")  # revoked before the bookkeeping failed
    assert await demo.claim_activation("grp-dev", MEMBER, "alice", "req-5#run-1", NOW) == run_key  # still claimed
    assert await demo.audit(request_id="req-4") == []

    monkeypatch.setattr(demo, "audit_in", write_line)
    await ActivityEnvironment().run(close, expiry(run_key))  # Temporal's retry
    assert not await demo.has_membership("grp-dev", MEMBER, "alice")
    assert await demo.claim_activation("grp-dev", MEMBER, "alice", "req-5#run-1", NOW) == "req-5#run-1"  # released
    lines = await demo.audit(request_id="req-4")
    assert [(line.action, line.details["revoked"]) for line in lines] == [("activation_ended", "true")]
    assert (await demo.verify_audit()).ok


async def test_another_live_source_keeps_the_membership_when_an_activation_ends(demo):
    await granted(demo, "req-2#run-1")
    await granted(demo, "req-3#run-1")  # a second activation of the same access, by another worker
    close = AccessActivities(demo, StoreDirectory(demo)).close_activation
    await ActivityEnvironment().run(close, expiry("req-2#run-1"))
    assert await demo.has_membership("grp-dev", MEMBER, "alice")
    await ActivityEnvironment().run(close, expiry("req-3#run-1"))
    assert not await demo.has_membership("grp-dev", MEMBER, "alice")
    assert [line.request_id for line in await demo.audit(group_id="grp-dev") if line.action == "activation_ended"] == [
        "req-2",
        "req-3",
    ]
